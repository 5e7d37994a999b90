"""The ReXNet paper's rank-study findings, checked against a `RankStudyResult`."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

__all__ = ["Finding", "check_findings"]

_LOW = 0.5  # "low dimension ratio": d_in / d_out at most this


@dataclass(frozen=True)
class Finding:
    """One claim of the paper and what the study's numbers say about it.

    ``status`` is ``"reproduced"``, ``"partly"``, ``"not reproduced"`` or ``"not tested"``
    (the study lacked the kinds or activations the claim needs).
    """

    name: str
    claim: str
    status: str
    evidence: str


def _status(held: int, total: int) -> str:
    if total == 0:
        return "not tested"
    return "reproduced" if held == total else "partly" if held else "not reproduced"


def _expansion(result) -> Finding:
    cfg = result.config
    lo, hi = min(cfg.ratios), max(cfg.ratios)
    pairs = [(k, a) for k in cfg.kinds for a in cfg.activations if a != "identity" and lo < hi]
    drops = {(k, a): result.point(k, a, hi).mean - result.point(k, a, lo).mean for k, a in pairs}
    held = sum(d > 1e-9 for d in drops.values())
    worst = max(drops, key=drops.get) if drops else None
    evidence = f"rank ratio lower at d_in/d_out={lo:g} than at {hi:g} for {held}/{len(pairs)} "
    evidence += "(layer kind, nonlinearity) pairs"
    if worst:
        evidence += f"; largest drop {drops[worst]:.3f} ({worst[0]}, {worst[1]})"
    return Finding(
        "expansion harms rank",
        "a layer that expands its input a lot (small d_in/d_out) loses output rank",
        _status(held, len(pairs)),
        evidence,
    )


def _low_mean(result, kind: str, act: str) -> float:
    return fmean(result.point(kind, act, r).mean for r in result.config.ratios if r <= _LOW)


def _nonlinearity(result) -> Finding:
    cfg = result.config
    low = [r for r in cfg.ratios if r <= _LOW]
    acts = [a for a in cfg.activations if a != "identity"]
    tested = "identity" in cfg.activations and low
    pairs = [(k, a) for k in cfg.kinds for a in acts] if tested else []
    gains = {(k, a): _low_mean(result, k, a) - _low_mean(result, k, "identity") for k, a in pairs}
    held = sum(g > 1e-9 for g in gains.values())
    evidence = (
        f"mean rank ratio at d_in/d_out <= {_LOW} above the identity's for {held}/{len(pairs)} "
        "(layer kind, nonlinearity) pairs"
    )
    return Finding(
        "nonlinearities expand rank",
        "f(WX) has a higher rank than WX",
        _status(held, len(pairs)),
        evidence,
    )


def _best_activations(result) -> Finding:
    cfg = result.config
    acts = [a for a in cfg.activations if a != "identity"]
    if not {"elu", "silu"} <= set(acts) or len(acts) < 3 or not any(r <= _LOW for r in cfg.ratios):
        return Finding("ELU/SiLU expand rank most", "", "not tested", "needs elu, silu and another")
    score = {a: fmean(_low_mean(result, k, a) for k in cfg.kinds) for a in acts}
    order = sorted(acts, key=lambda a: -score[a])
    top = set(order[:2])
    status = "reproduced" if top == {"elu", "silu"} else "partly" if top & {"elu", "silu"} else ""
    evidence = f"mean rank ratio at d_in/d_out <= {_LOW}, all kinds: " + ", ".join(
        f"{a} {score[a]:.3f}" for a in order
    )
    return Finding(
        "ELU/SiLU expand rank most",
        "of the nonlinearities, ELU and SiLU raise the rank the most",
        status or "not reproduced",
        evidence,
    )


def _depthwise(result) -> Finding:
    cfg = result.config
    acts = [a for a in cfg.activations if a != "identity"]
    if not {"ib_conv3x3", "ib_dw3x3"} <= set(cfg.kinds) or not acts:
        return Finding("depthwise needs a higher ratio", "", "not tested", "needs both ib kinds")
    mean = {
        k: fmean(result.point(k, a, r).mean for a in acts for r in cfg.ratios)
        for k in ("ib_conv3x3", "ib_dw3x3")
    }
    gap = mean["ib_conv3x3"] - mean["ib_dw3x3"]
    status = "reproduced" if gap > 1e-3 else "not reproduced"
    evidence = (
        f"mean rank ratio over nonlinearities and ratios: 3x3 conv block "
        f"{mean['ib_conv3x3']:.4f}, depthwise block {mean['ib_dw3x3']:.4f}"
    )
    return Finding(
        "depthwise needs a higher ratio",
        "a depthwise bottleneck keeps less rank than a full-conv one at the same ratio",
        status,
        evidence,
    )


def check_findings(result) -> list[Finding]:
    """The four findings of the paper's rank study, in the paper's order."""
    checks = (_expansion, _nonlinearity, _best_activations, _depthwise)
    return [check(result) for check in checks]
