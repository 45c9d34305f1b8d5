#!/usr/bin/env python3
"""Pairs the figures of two builds' benchmark runs round by round (scripts/bench-compare.sh).

A figure is a number on an output line, named by the line's shape (the line with every number
replaced by '#', under the section header '## ...' it follows) and by the word beside it
(`req/s`, `p99`, `ms`, ...). Figures equal in every run (client counts, phase lengths) are not
figures of the build and are left out. For each figure it prints A's and B's medians and the
ratio B/A of each round's pair: min / median / max.
"""
import re
import statistics
import sys
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)(ms|us|s|%|MiB|GiB|KiB|x|/s)?(?![\w.])")
UNIT_WORD = re.compile(r"^[a-z]*/s$|^(ms|s|%|MiB|GiB|codes|orders|searches)$")


def shape(line):
    return re.sub(r"\s+", " ", NUMBER.sub("#", line)).strip()


def name_of(line, m):
    """What a number on a line measures: `p99 ms`, `req/s`, `c` (client counts)..."""
    before = line[: m.start()]
    attached = re.search(r"([A-Za-z_][\w-]*)[=:]$", before)
    after = line[m.end():].split()
    unit = m.group(2) or ""
    if not unit and after and UNIT_WORD.match(after[0]):
        unit = after[0]
    if attached:
        prefix = attached.group(1)
    else:
        words = before.split()
        prefix = words[-1] if words and re.fullmatch(r"[A-Za-z][\w-]*", words[-1]) else ""
        if prefix and unit and not re.fullmatch(r"p\d+|max|min|mean|avg", prefix):
            prefix = ""
    return (prefix + " " + unit).strip() or "value"


def figures(path):
    """{(section, line shape, figure name): value} of one run's output."""
    found = {}
    section = ""
    seen = {}
    for raw in Path(path).read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("## "):
            section = shape(line)
            seen = {}
            continue
        key = shape(line)
        # A line shape met again in one section (a table row per client count) is told apart
        # by its order.
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n:
            key = f"{key} [{n + 1}]"
        for i, m in enumerate(NUMBER.finditer(line)):
            value = float(m.group(1).replace(",", ""))
            found[(section, key, f"{i + 1}:{name_of(line, m)}")] = value
    return found


def main():
    out, rounds = Path(sys.argv[1]), int(sys.argv[2])
    runs = {side: [figures(out / side / f"run-{r}.txt") for r in range(1, rounds + 1)]
            for side in ("A", "B")}
    keys = [k for k in runs["A"][0] if all(k in run for side in runs.values() for run in side)]
    rows = []
    for key in keys:
        a = [run[key] for run in runs["A"]]
        b = [run[key] for run in runs["B"]]
        if len(set(a + b)) == 1:
            continue
        ratios = [y / x for x, y in zip(a, b) if x]
        rows.append((key, statistics.median(a), statistics.median(b), ratios))
    section = None
    print(f"{'figure':<70} {'A median':>12} {'B median':>12}   B/A min / median / max")
    for (sec, line, name), a, b, ratios in rows:
        if sec != section:
            section = sec
            print(f"\n{sec}")
        text = f"  {line[:52]:<52} {name[:15]:<15}"
        if ratios:
            r = f"{min(ratios):.3f} / {statistics.median(ratios):.3f} / {max(ratios):.3f}"
        else:
            r = "-"
        print(f"{text} {a:>12,.2f} {b:>12,.2f}   {r}")
    missing = [k for k in set().union(*runs["A"], *runs["B"]) if k not in keys]
    if missing:
        print(f"\n({len(missing)} figures not in every run of both builds were left out)")


if __name__ == "__main__":
    main()
