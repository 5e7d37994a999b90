"""ReXNet's rank study at its default settings, without BatchNorm, and with a 1e-2 threshold.

Writes results/rank_study.md (figures, the findings, the table), rank_study.csv and the
figures rank_study.png (the defaults), rank_study_nobn.png and rank_study_rtol.png; docs/
shows the first.

Run: .venv/bin/python benchmarks/rank_study.py
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from _common import RESULTS, write_table

from studies.rank_study import RankStudyConfig, rank_study

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _findings(result) -> str:
    return "\n".join(f"- **{f.name}** — {f.status}: {f.evidence}." for f in result.findings())


def main() -> None:
    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    runs = {}
    for label, config in (
        ("with BN", RankStudyConfig()),
        ("without BN", RankStudyConfig(batch_norm=False)),
        ("with BN, rtol 1e-2", RankStudyConfig(rtol=1e-2)),
    ):
        start = time.perf_counter()
        runs[label] = (rank_study(config), time.perf_counter() - start)
    with_bn, without_bn = runs["with BN"][0], runs["without BN"][0]
    with_bn.plot(RESULTS / "rank_study.png")
    without_bn.plot(RESULTS / "rank_study_nobn.png")
    runs["with BN, rtol 1e-2"][0].plot(RESULTS / "rank_study_rtol.png")
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(RESULTS / "rank_study.png", DOCS / "rank_study.png")
    rows = [
        [label, p.kind, p.activation, f"{p.ratio:g}", f"{p.mean:.3f}", f"{p.std:.3f}", p.networks]
        for label, (result, _) in runs.items()
        for p in result.points
        if p.ratio in (0.1, 0.2, 0.3, 0.5, 1.0)
    ]
    notes = [
        "![rank study, with BN](rank_study.png)",
        "",
        "Without BN: ![rank study, without BN](rank_study_nobn.png)",
        "",
        "With BN, counting only singular values above 1e-2 sigma_max: "
        "![rank study, rtol 1e-2](rank_study_rtol.png)",
        "",
    ]
    for label, (result, seconds) in runs.items():
        notes += [f"Findings {label} ({seconds:.0f} s, 1 thread):", _findings(result), ""]
    notes.append(
        "Rank: singular values above max(rows, cols) x float32 eps x sigma_max (NumPy's "
        "numerical rank), except in the rtol 1e-2 run. Full table (all ratios): "
        "rank_study.csv (with BN, machine precision)."
    )
    headers = ["setting", "kind", "nonlinearity", "d_in/d_out", "rank ratio", "std", "networks"]
    write_table("rank_study", headers, rows, "\n".join(notes))
    with_bn.to_csv(RESULTS / "rank_study.csv")


if __name__ == "__main__":
    main()
