"""Which method for my model? Every method at every budget, side by side, the best kept.

`compare` runs every method (`METHODS`: pruning with L1 and Taylor importance, the INN with
partition tuning, a slimmable model, SVD and data-aware ALDS low rank, TAS with
distillation) through `anywidth.compress` at each budget, with the same tuning steps or
fine-tune epochs for all, and scores each on the validation split; `write_report` writes
the table, a Pareto plot and an HTML page. `Auto` makes the same choice inside
``compress``: a cheap screen, then the best method finished.

Example:
    >>> from anywidth.compression.pipeline import open_checkpoint
    >>> source = open_checkpoint("runs/train/last.safetensors")
    >>> result = compare(subject_of(source), CompareConfig(macs=(0.5, 0.25)), "runs/compare")
    >>> write_report(result, "runs/compare")["html"]
    PosixPath('runs/compare/report.html')
    >>> small, report = compress(source.model, source.example, Auto(Budget(macs=0.5)),
    ...                          source.loaders)
"""

from anywidth.compare.auto import Auto, AutoReport, Trial
from anywidth.compare.methods import METHODS, ONE_SHOT, Method, Settings, Subject, method_names
from anywidth.compare.report import plot_pareto, write_report
from anywidth.compare.run import CompareConfig, Comparison, Row, compare, subject_of

__all__ = [
    "METHODS",
    "ONE_SHOT",
    "Auto",
    "AutoReport",
    "CompareConfig",
    "Comparison",
    "Method",
    "Row",
    "Settings",
    "Subject",
    "Trial",
    "compare",
    "method_names",
    "plot_pareto",
    "subject_of",
    "write_report",
]
