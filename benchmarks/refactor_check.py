"""Row-by-row comparison of one benchmark table run at two commits (timing columns left out).

Used to show that the issue-21 refactor (one verb, one task, one loop) leaves the figures of
the benchmark tables as they were: each table is run in two clones, before (86ba7ca) and after
(2f43711), with the same command, and the two Markdown tables are compared here.

    python benchmarks/refactor_check.py BEFORE_DIR AFTER_DIR lowrank_check tas superres
"""

from __future__ import annotations

import sys

TIMING = ("ms", "speed-up", " s", "s per", "time", "train s", "prune s", "tp s", "compress s")


def rows(path: str) -> tuple[list[str], list[list[str]]]:
    head, out = None, []
    for line in open(path):
        if not line.startswith("| "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if head is None:
            head = cells
            continue
        if set(cells[0]) <= {"-"}:
            continue
        out.append(cells)
    keep = [i for i, h in enumerate(head) if not any(t in h for t in TIMING)]
    return [head[i] for i in keep], [[r[i] for i in keep] for r in out]


def main(before: str, after: str, names: list[str]) -> str:
    out = []
    for name in names:
        head, pre = rows(f"{before}/benchmarks/results/{name}.md")
        _, post = rows(f"{after}/benchmarks/results/{name}.md")
        same = sum(a == b for a, b in zip(pre, post, strict=True))
        out.append(f"### {name}: {same} of {len(post)} rows identical (timing columns left out)\n")
        diff = [(a, b) for a, b in zip(pre, post, strict=True) if a != b]
        if diff:
            out.append("| before / after | " + " | ".join(head) + " |")
            out.append("|---" * (len(head) + 1) + "|")
            for a, b in diff:
                out.append("| before | " + " | ".join(a) + " |")
                out.append("| after | " + " | ".join(b) + " |")
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
