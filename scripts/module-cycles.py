#!/usr/bin/env python3
"""Import cycles between the top-level modules of a crate (allot-server by default).

    scripts/module-cycles.py [--edges] [CRATE_SRC_DIR]

Reads every `crate::...` path and every `super::` path that climbs out of its top-level module
in each file under the source directory (comments and string literals skipped), turns them
into edges between top-level modules (`http/auth.rs` belongs to `http`; a name re-exported by
lib.rs, like `crate::ServiceError`, to the module it comes from), and prints each group of
modules that reach one another, with the references that close the circle. Exits 1 when there
is a cycle, so CI can keep it at none.
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def code_only(text):
    """The text with comments and the contents of string and char literals blanked out
    (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", text[i:]).group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def group_heads(body):
    """The first segment of each path in a `{a::b, c, d::{e, f}}` group."""
    heads, depth, start = [], 0, 0
    for k, ch in enumerate(body + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = body[start:k].strip()
            start = k + 1
            m = re.match(IDENT, part)
            if m:
                heads.append(m.group(0))
    return heads


def module_of(path, src):
    """The module path of a file: src/http/auth.rs -> [http, auth], src/http/mod.rs -> [http]."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def references(text):
    """(line, absolute-or-relative path head, kind) for each path the code names."""
    for m in re.finditer(r"\bcrate::(\{|" + IDENT + ")", text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group(1) == "{":
            depth, j = 1, m.end()
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            for head in group_heads(text[m.end() : j - 1]):
                yield line, [head]
        else:
            yield line, [m.group(1)]
    for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:super::)+)(\{|" + IDENT + ")", text):
        line = text.count("\n", 0, m.start()) + 1
        ups = m.group(1).count("super::")
        heads = [m.group(2)]
        if m.group(2) == "{":
            depth, j = 1, m.end()
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            heads = group_heads(text[m.end() : j - 1])
        for head in heads:
            yield line, ["super"] * ups + [head]


def main():
    root = Path(__file__).resolve().parent.parent
    args = [a for a in sys.argv[1:] if a != "--edges"]
    show_edges = "--edges" in sys.argv[1:]
    src = Path(args[0]) if args else root / "crates/allot-server/src"
    lib = src / "lib.rs"
    lib_text = code_only(lib.read_text())
    modules = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", lib_text, re.M))
    # Names lib.rs re-exports (`pub use error::ServiceError;`) belong to their module.
    reexports = {}
    for m in re.finditer(r"pub\s+use\s+(" + IDENT + r")::(\{[^}]*\}|" + IDENT + r")\s*;", lib_text):
        names = group_heads(m.group(2)[1:-1]) if m.group(2).startswith("{") else [m.group(2)]
        for name in names:
            reexports[name] = m.group(1)

    edges = defaultdict(list)  # (from, to) -> ["file:line", ...]
    for path in sorted(src.rglob("*.rs")):
        own = module_of(path, src)
        if not own or own[0] not in modules:
            continue
        text = code_only(path.read_text())
        for line, segments in references(text):
            if segments[0] == "super":
                ups = segments.count("super")
                # A `super::` inside an inline `mod tests` climbs one level less than counted
                # here; that only ever lands inside the same top-level module, so it is harmless.
                if ups < len(own):
                    continue
                target = segments[-1] if ups == len(own) else None
            else:
                target = segments[0]
            target = reexports.get(target, target)
            if target in modules and target != own[0]:
                edges[(own[0], target)].append(f"{path.relative_to(src)}:{line}")

    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)

    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(modules):
        if v not in index:
            visit(v)

    cycles = [c for c in sccs if len(c) > 1]
    print(f"{len(modules)} top-level modules, {len(edges)} dependencies between them")
    if show_edges:
        for module in sorted(modules):
            print(f"  {module} -> {', '.join(sorted(graph[module])) or '(none)'}")
    if not cycles:
        print("no import cycles")
        return 0
    for comp in sorted(cycles):
        print(f"cycle between {len(comp)} modules: {', '.join(comp)}")
        members = set(comp)
        for (a, b), where in sorted(edges.items()):
            if a in members and b in members:
                shown = ", ".join(where[:3]) + (f" (+{len(where) - 3})" if len(where) > 3 else "")
                print(f"  {a} -> {b}: {shown}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
