#!/usr/bin/env python3
"""Product search load (scripts/bench-search.sh): seeds a catalog through the API, then runs
searches from concurrent clients and prints p50/p99 per query kind.

Standard library only: one asyncio process speaking HTTP/1.1 keep-alive on raw sockets (a
thread per client would measure Python's lock, not the server).

  search.py seed   --server URL --products N [--concurrency C]
  search.py search --server URL --requests N [--concurrency C]

The API key is read from ALLOT_API_KEY. Generated data is deterministic (seeded), so the
search phase knows which words exist: every query kind but `filtered` must find something,
and a run where one does not fails.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.parse

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zen", "dor", "lin", "bar", "tex",
             "pi", "sol", "gra", "fen"]
ADJECTIVES = ["black", "silver", "compact", "classic", "wireless", "heavy", "light", "smart",
              "vintage", "portable", "organic", "steel", "wooden", "premium", "basic", "mini",
              "pro", "ultra", "soft", "rugged", "slim", "large", "small", "quiet", "fast",
              "warm", "cool", "round", "square", "bright"]
COLORS = ["red", "blue", "green", "black", "white", "grey", "yellow", "orange", "purple",
          "pink", "brown", "teal"]
MATERIALS = ["cotton", "wool", "steel", "oak", "plastic", "glass", "leather", "bamboo"]


def vocabulary():
    rng = random.Random(7)
    words = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES})
    rng.shuffle(words)
    return words[:400], words[400:2400]  # nouns, description words


NOUNS, WORDS = vocabulary()
WEIGHTS = [1.0 / (i + 1) for i in range(len(WORDS))]  # Zipf-like description words


class Conn:
    def __init__(self, host, port, key):
        self.host, self.port, self.key = host, port, key
        self.reader = self.writer = None

    async def request(self, method, path, body=None):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = b"" if body is None else json.dumps(body).encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nX-Api-Key: {self.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        self.writer.write(head.encode() + data)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            payload = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                payload += chunk[:-2]
        else:
            payload = await self.reader.readexactly(length)
        return status, payload


def endpoint(server):
    u = urllib.parse.urlparse(server)
    return u.hostname, u.port


async def seed(args):
    host, port = endpoint(args.server)
    key = os.environ["ALLOT_API_KEY"]
    c = Conn(host, port, key)
    roots = []
    categories = []
    for r in range(8):
        s, b = await c.request("POST", "/api/v1/categories", {"name": f"Department {r}"})
        assert s == 201, b
        root = json.loads(b)["id"]
        roots.append(root)
        for k in range(5):
            s, b = await c.request("POST", "/api/v1/categories",
                                   {"name": f"Aisle {r}.{k}", "parent_id": root})
            assert s == 201, b
            categories.append(json.loads(b)["id"])
    queue = asyncio.Queue()
    for i in range(args.products):
        queue.put_nowait(i)
    started = time.monotonic()
    done = 0

    async def worker():
        nonlocal done
        conn = Conn(host, port, key)
        while not queue.empty():
            i = queue.get_nowait()
            rng = random.Random(i)
            noun = NOUNS[i % len(NOUNS)]
            adjective = ADJECTIVES[(i // len(NOUNS)) % len(ADJECTIVES)]
            words = rng.choices(WORDS, weights=WEIGHTS, k=rng.randint(12, 30))
            if rng.random() < 0.3:
                words.insert(rng.randrange(len(words)), rng.choice(NOUNS))
            body = {
                "sku": f"B-{i:06d}",
                "name": f"{adjective.capitalize()} {noun} {rng.choice(['x', 'z', 'q'])}{i % 97}",
                "description": " ".join(words).capitalize() + ".",
                "price": {"amount_minor": rng.randint(100, 200_000), "currency": "EUR"},
                "category_id": categories[i % len(categories)],
                "active": i % 10 != 0,
                "attributes": {"color": COLORS[i % len(COLORS)],
                               "material": MATERIALS[(i // 3) % len(MATERIALS)],
                               "size": (i % 9) + 36, "eco": i % 4 == 0},
            }
            s, b = await conn.request("POST", "/api/v1/products", body)
            if s != 201:
                sys.exit(f"create {i}: {s} {b[:200]!r}")
            done += 1
            if done % 10_000 == 0:
                print(f"  {done} products, {done / (time.monotonic() - started):.0f}/s",
                      flush=True)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    took = time.monotonic() - started
    print(f"seeded {args.products} products in {took:.0f} s "
          f"({args.products / took:.0f}/s, {args.concurrency} parallel requests)")
    with open(args.roots, "w") as f:
        json.dump({"roots": roots, "products": args.products}, f)


def query(kind, rng, roots, products):
    j = rng.randrange(products)  # a product that exists: its noun and adjective
    noun = NOUNS[j % len(NOUNS)]
    if kind == "one_word":
        return {"q": noun}, True
    if kind == "two_words":
        adjective = ADJECTIVES[(j // len(NOUNS)) % len(ADJECTIVES)]
        return {"q": f"{adjective} {noun}"}, True
    if kind == "prefix":
        return {"q": noun[:rng.randint(3, 5)]}, True
    if kind == "filtered":
        low = rng.randint(0, 150_000)
        return {"q": noun, "category": rng.choice(roots), "min_price": low,
                "max_price": low + 50_000, "active": "true"}, False
    if kind == "facets":
        return {"q": noun, "facets": "true"}, True
    raise ValueError(kind)


KINDS = ["one_word", "two_words", "prefix", "filtered", "facets"]


async def search(args):
    host, port = endpoint(args.server)
    key = os.environ["ALLOT_API_KEY"]
    with open(args.roots) as f:
        seeded = json.load(f)
    roots, products = seeded["roots"], seeded["products"]
    latencies = {k: [] for k in KINDS}
    empty = {k: 0 for k in KINDS}
    counter = iter(range(args.requests))

    async def client(n):
        conn = Conn(host, port, key)
        rng = random.Random(1000 + n)
        for i in counter:
            kind = KINDS[i % len(KINDS)]
            params, must_find = query(kind, rng, roots, products)
            path = "/api/v1/products?" + urllib.parse.urlencode(params) + "&limit=20"
            t = time.perf_counter()
            s, b = await conn.request("GET", path)
            latencies[kind].append(time.perf_counter() - t)
            if s != 200:
                sys.exit(f"{path}: {s} {b[:200]!r}")
            page = json.loads(b)
            if not page["products"]:
                empty[kind] += 1
                if must_find:
                    sys.exit(f"{path}: nothing found")
            if kind == "facets" and page["facets"]["total"] < len(page["products"]):
                sys.exit(f"{path}: facets count less than the page")

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(args.concurrency)))
    took = time.monotonic() - started
    total = sum(len(v) for v in latencies.values())
    print(f"{total} searches from {args.concurrency} clients in {took:.1f} s "
          f"({total / took:.0f}/s)")
    print(f"{'kind':<10} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'empty':>6}")
    for k in KINDS:
        v = sorted(latencies[k])
        if not v:
            continue
        p = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1000
        print(f"{k:<10} {len(v):>6} {p(0.50):>8.1f} {p(0.99):>8.1f} {v[-1] * 1000:>8.1f} "
              f"{empty[k]:>6}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "search"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--products", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=5_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--roots", required=True, help="file of the root category ids")
    args = ap.parse_args()
    asyncio.run(seed(args) if args.mode == "seed" else search(args))


if __name__ == "__main__":
    main()
