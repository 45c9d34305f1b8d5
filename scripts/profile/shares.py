"""Shares of a folded profile (inferno-collapse-perf output on stdin) spent in named parts of
the server: a sample counts for a part when any frame of its stack matches the part's pattern;
a sample may count for several parts, so the shares do not add up to 100%."""
import re
import sys

PARTS = [
    ("request log (tracing fmt)", r"tracing_subscriber::fmt|tracing_appender"),
    ("metrics", r"metrics::|metrics_exporter_prometheus|metrics_util"),
    ("JSON (serde_json)", r"serde_json::"),
    ("SQLite", r"sqlite3|rusqlite"),
    ("group-commit writer", r"allot_storage::sqlite::writer"),
    ("HTTP (hyper)", r"hyper::"),
    ("routing and middleware (axum, tower)", r"axum::|tower::|tower_http::"),
    # The API key's check itself (the authorization layer wraps every handler, so its frames
    # would count the whole request).
    ("authentication (key check)", r"allot_server::service::auth::"),
    ("kernel: network", r"tcp_|ip_|__x64_sys_(sendto|recvfrom|write|read|writev|epoll)|sock_|skb_"),
    ("kernel: fsync", r"fsync|ext4_sync|jbd2"),
    ("allocator (malloc/free)", r"^malloc$|^free$|_int_malloc|_int_free|cfree|realloc"),
]

total = 0
hits = [0] * len(PARTS)
pats = [re.compile(p) for _, p in PARTS]
for line in sys.stdin:
    stack, _, n = line.rstrip("\n").rpartition(" ")
    if not n.isdigit():
        continue
    n = int(n)
    total += n
    frames = stack.split(";")
    for i, pat in enumerate(pats):
        if any(pat.search(f) for f in frames):
            hits[i] += n
print(f"{total} samples")
for (name, _), h in zip(PARTS, hits):
    print(f"{100.0 * h / max(total, 1):5.1f}%  {name}")
