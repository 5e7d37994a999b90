"""`search_shape`: TAS, a differentiable search of widths and depths under a MAC target.

Every resizable channel group gets a distribution over candidate widths, every run of
skippable blocks one over how many of its blocks to keep. Each training batch pair makes a
weight step (SGD, cross-entropy of the supernet with two sampled candidates per
distribution) on one half of the training data and an architecture step (Adam on the
logits, cross-entropy plus ``λ·L_cost``) on the other half; the Gumbel-softmax temperature
decays linearly. The result is the argmax shape, which `SearchResult.materialize` turns into
a real, smaller model of the user's class through `cut`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from anywidth._progress import progress
from anywidth.data import Loaders
from anywidth.graph import Analysis, Cutter, keep_first
from anywidth.graph.plan import WidthCost
from anywidth.measure import count_macs, evaluate
from anywidth.record import add_step_
from anywidth.search._arch import Architecture, candidate_sizes
from anywidth.search._blocks import find_runs, skip_blocks_
from anywidth.search._private import check_reachable, halves, ordered_copy, reinit_
from anywidth.search._supernet import Choices, GroupSite, build_supernet, sites_of
from anywidth.search.config import SearchConfig
from anywidth.search.ops import cost_loss
from anywidth.train import recalibrate_bn_
from anywidth.train.distributed import (
    average_gradients_,
    collective,
    init_distributed,
    shard_train_loader,
    wrap_ddp,
)
from anywidth.train.loop import run_steps_
from anywidth.train.steps import update_

__all__ = ["SearchResult", "replay_skip", "search_shape"]

logger = logging.getLogger("anywidth.search")

_RECAL_BATCHES = 10


@dataclass
class SearchResult:
    """The shape a search found, its log, and the way to build it.

    Attributes:
        plan: ``{channel group: width}`` of every searched group (argmax candidates).
        depths: ``{first block of a run: blocks kept}``; ``runs`` lists each run's blocks.
        runs: the block names of every run of skippable blocks.
        macs: MACs of the found shape, for the example input (exact: equals
            `anywidth.measure.count_macs` of ``materialize()``).
        original_macs: MACs of the model searched.
        log: one dict per epoch: ``epoch``, ``tau``, ``expected_macs`` and ``argmax_macs``
            (fractions of the original), ``val_accuracy`` (of the argmax shape in the
            supernet), ``seconds``.
        config: the settings of the search.
        seconds: wall time of the search.
    """

    plan: dict[str, int]
    depths: dict[str, int]
    runs: list[list[str]]
    macs: int
    original_macs: int
    log: list[dict[str, Any]]
    config: SearchConfig
    seconds: float = 0.0
    _source: nn.Module | None = field(default=None, repr=False)
    _example: Any = field(default=None, repr=False)
    _analysis: Analysis | None = field(default=None, repr=False)

    @property
    def mac_ratio(self) -> float:
        return self.macs / self.original_macs

    @property
    def in_band(self) -> bool:
        """The found shape's MACs lie within ``target ± tolerance`` of the original."""
        return abs(self.mac_ratio - self.config.target_macs) <= self.config.tolerance

    @property
    def original_widths(self) -> dict[str, int]:
        """The width of every searched group in the model searched."""
        sizes = {g.name: g.size for g in self._analysis.groups} if self._analysis else {}
        return {name: sizes[name] for name in self.plan if name in sizes}

    @property
    def skipped(self) -> list[str]:
        """The blocks the found shape leaves out."""
        return [name for run in self.runs for name in run[self.depths[run[0]] :]]

    def materialize(self, init: str = "pretrained") -> nn.Module:
        """The found shape as a real model of the searched model's class.

        Args:
            init: ``"pretrained"``: the unpruned weights, each group's leading channels (in
                the search's channel order) through `cut`, skipped blocks replaced by
                ``nn.Identity``; ``"random"``: the same shape, freshly initialised.

        Returns:
            A new model; its record lists the cut and the skipped blocks, so a checkpoint
            of it reloads with `anywidth.train.load_model`.
        """
        if init not in ("pretrained", "random"):
            raise ValueError(f"materialize(init={init!r}); use 'pretrained' or 'random'")
        if self._source is None:
            raise ValueError(
                "this SearchResult has no model; rebuild it with "
                "SearchResult.from_dict(data, model, example_input)"
            )
        keep = keep_first(self._analysis.groups, self.plan)
        cutter = Cutter(self._source, self._example, groups=self._analysis)
        small = cutter(keep, method="search")
        if self.skipped:
            skip_blocks_(small, self.skipped)
            add_step_(small, small, {"kind": "skip", "blocks": self.skipped})
        if init == "random":
            reinit_(small, self.config.seed)
        return small

    def to_dict(self) -> dict[str, Any]:
        """The shape, log and settings as JSON-friendly data (`from_dict` reads it back)."""
        return {
            "plan": dict(self.plan),
            "depths": dict(self.depths),
            "runs": [list(run) for run in self.runs],
            "macs": self.macs,
            "original_macs": self.original_macs,
            "log": list(self.log),
            "config": self.config.to_dict(),
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], model: nn.Module, example_input: torch.Tensor | tuple
    ) -> SearchResult:
        """A saved result, attached to the model it was searched on (for `materialize`).

        Raises:
            ValueError: a plan group or run block that ``model`` does not have.
        """
        config = SearchConfig.from_dict(data["config"])
        source, analysis = ordered_copy(model, example_input, config.fixed, config.order)
        names = {g.name for g in analysis.groups}
        unknown = sorted(set(data["plan"]) - names)
        if unknown:
            raise ValueError(
                f"the shape names channel group {unknown[0]!r}, which this model does not "
                "have; pass the model the search ran on"
            )
        modules = {n for n, _ in source.named_modules()}
        for run in data["runs"]:
            if not set(run) <= modules:
                raise ValueError(f"the shape's run {run} names blocks this model does not have")
        fields_ = {k: data[k] for k in ("plan", "depths", "runs", "macs", "original_macs", "log")}
        return cls(
            **fields_,
            config=config,
            seconds=data.get("seconds", 0.0),
            _source=source,
            _example=example_input,
            _analysis=analysis,
        )


def _searched(source: nn.Module, analysis: Analysis, ratios) -> tuple[list, list, list]:
    """The groups to search, where their channels are written, and their candidates."""
    names, sites, candidates, skipped = [], [], [], []
    for group in analysis.groups:
        sizes = candidate_sizes(group.size, ratios)
        if group.fixed or len(sizes) < 2:
            continue
        site = sites_of(source, analysis.ax.gm, group)
        if not isinstance(site, GroupSite):
            skipped.append(f"{group.name!r} ({site})")
            continue
        names.append(group.name)
        sites.append(site)
        candidates.append(sizes)
    if skipped:
        logger.warning("search keeps channel group(s) whole: %s", "; ".join(skipped))
    return names, sites, candidates


def search_shape(
    model: nn.Module,
    example_input: torch.Tensor | tuple,
    data: Loaders | torch.utils.data.DataLoader,
    config: SearchConfig | None = None,
) -> SearchResult:
    """Search the width of every channel group and the depth of every run of blocks (TAS).

    Args:
        model: the trained network (not changed); any model `channel_groups` understands.
            Groups written by layers other than Conv/Linear/BatchNorm are kept whole, with
            a logged warning.
        example_input: a batch of the shape the model expects (MACs are counted for it).
        data: a `Loaders` record (its train loader is split in two halves, its val loader
            scores the log) or a training ``DataLoader`` over a map-style dataset.
        config: the search settings; `SearchConfig()` by default.

    Returns:
        A `SearchResult`.

    Raises:
        PlanError: a ``fixed`` pattern matches no channel group.
        ValueError: a bad target (or one the candidates cannot reach), or a named block
            that cannot be skipped.

    Example:
        >>> loaders = make_loaders("digits")
        >>> x = next(iter(loaders.test))[0][:1]
        >>> result = search_shape(model, x, loaders, SearchConfig(target_macs=0.5, epochs=8))
        >>> small = result.materialize()  # a smaller model of the same class
    """
    config = config or SearchConfig()
    if config.target_macs is None:  # an absolute budget: a fraction of this model's MACs
        config = config.resolved(count_macs(model, example_input))
    began = time.perf_counter()
    source, analysis = ordered_copy(model, example_input, config.fixed, config.order)
    runs = find_runs(source, example_input, config.blocks) if config.depth else []
    names, sites, candidates = _searched(source, analysis, config.width_ratios)
    generator = torch.Generator().manual_seed(config.seed)
    arch = Architecture(
        names, candidates, runs, WidthCost(source, example_input, analysis), generator
    )
    check_reachable(arch, config.target_macs)
    choices = Choices()
    net = build_supernet(source, sites, candidates, runs, choices)
    log, shapes = _run(net, arch, choices, data, config)
    plan, depths = _pick_shape(log, shapes, config)
    return SearchResult(
        plan=plan,
        depths={run[0]: k for run, k in zip(runs, depths, strict=True)},
        runs=runs,
        macs=arch.macs(plan, depths),
        original_macs=arch.full_macs,
        log=log,
        config=config,
        seconds=time.perf_counter() - began,
        _source=source.eval(),
        _example=example_input,
        _analysis=analysis,
    )


def _run(net: nn.Module, arch: Architecture, choices: Choices, data, config: SearchConfig):
    """The alternating weight / architecture steps; returns the per-epoch log.

    Under ``torchrun`` the weight steps run through DDP and the architecture gradients are
    averaged over the ranks; every rank draws the same architecture samples (one seeded
    generator) and reads its share of each batch of both halves.
    """
    device = next(net.parameters()).device
    arch.to(device)
    weights_half, arch_half, val = halves(data, config.seed)
    where = init_distributed()
    weight_batches = shard_train_loader(weights_half, where, config.seed)
    arch_batches = shard_train_loader(arch_half, where, config.seed)
    torch.manual_seed(config.seed)
    weights = list(net.parameters())
    opt_w = torch.optim.SGD(weights, config.lr, momentum=0.9, weight_decay=config.weight_decay)
    steps = config.epochs * min(len(weight_batches), len(arch_batches))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt_w, max(1, steps))
    opt_a = torch.optim.Adam(
        arch.parameters(), config.arch_lr, betas=(0.5, 0.999), weight_decay=config.arch_weight_decay
    )
    log, shapes = [], []
    # Some sampled shapes leave whole blocks (and their parameters) out of a step.
    ddp = wrap_ddp(net, where, device, find_unused_parameters=True)
    bar = progress(range(config.epochs), "search")
    for epoch in bar:
        began = time.perf_counter()
        span = max(1, config.epochs - 1)
        tau = config.tau_max - (config.tau_max - config.tau_min) * epoch / span
        ddp.train()
        step = _bilevel_step(ddp, net, arch, choices, (opt_w, sched, opt_a), tau, config)
        with collective(f"searching (epoch {epoch + 1})"):
            pairs = zip(weight_batches, arch_batches, strict=False)
            run_steps_(step, pairs, desc=f"epoch {epoch + 1}", total=steps // config.epochs)
        scored = val or arch_half
        log.append(_epoch_entry(net, arch, choices, (weights_half, scored), epoch + 1, tau, began))
        shapes.append(arch.shape())
        bar.set_postfix(macs=f"{log[-1]['argmax_macs']:.1%}", acc=f"{log[-1]['val_accuracy']:.1%}")
    return log, shapes


def _pick_shape(log: list[dict], shapes: list, config: SearchConfig):
    """The last epoch's argmax shape, unless it left the band: then the latest one inside.

    Near the band's edge the argmax can flip in and out from one epoch to the next; the
    reference keeps whatever the last step left.
    """
    for entry, shape in zip(reversed(log), reversed(shapes), strict=True):
        if abs(entry["argmax_macs"] - config.target_macs) <= config.tolerance:
            if entry is not log[-1]:
                logger.info("search: epoch %d's shape, the last inside the band", entry["epoch"])
            return shape
    logger.warning(
        "search: no epoch's shape is within %.0f%% ± %.0f%% of the MACs (last: %.1f%%); "
        "search longer, or raise SearchConfig.arch_lr or cost_weight",
        100 * config.target_macs,
        100 * config.tolerance,
        100 * log[-1]["argmax_macs"],
    )
    return shapes[-1]


def _bilevel_step(ddp, net, arch: Architecture, choices: Choices, optimizers, tau, config):
    """TAS's step strategy for `anywidth.train.loop.run_steps_`: on a pair of batches, a
    weight step (cross-entropy of the supernet with sampled shapes, SGD) on the first,
    then an architecture step (cross-entropy plus ``λ·L_cost``, Adam on the logits, the
    supernet's weights frozen) on the second."""
    opt_w, sched, opt_a = optimizers
    device = next(net.parameters()).device

    def step(index: int, batches) -> None:
        (xw, yw), (xa, ya) = batches
        arch.sample_(choices, tau)
        update_(opt_w, F.cross_entropy(ddp(xw.to(device)), yw.to(device)), scheduler=sched)
        _arch_step(net, arch, choices, opt_a, xa.to(device), ya.to(device), tau, config)

    return step


def _arch_step(net, arch: Architecture, choices: Choices, opt, x, y, tau, config) -> None:
    for p in net.parameters():
        p.requires_grad_(False)
    try:
        arch.sample_(choices, tau)
        plan, depths = arch.shape()
        current = arch.macs(plan, depths) / arch.full_macs
        expected = arch.expected_macs()
        cost = cost_loss(expected, current, config.target_macs, config.tolerance)
        loss = F.cross_entropy(net(x), y) + config.cost_weight * cost

        def average() -> None:
            average_gradients_(arch.parameters(), "averaging the architecture gradients")

        update_(opt, loss, before_step=average)
    finally:
        for p in net.parameters():
            p.requires_grad_(True)


def _epoch_entry(net, arch: Architecture, choices: Choices, loaders, epoch, tau, began):
    """The epoch's log line. The argmax shape is scored with BatchNorm statistics
    re-estimated for it (mixed training leaves them fit to mixtures), then put back."""
    plan, depths = arch.shape()
    with torch.no_grad():
        expected = float(arch.expected_macs())
    arch.argmax_(choices)
    saved = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    recalibrate_bn_(net, loaders[0], batches=_RECAL_BATCHES)
    accuracy = evaluate(net, loaders[1], next(net.parameters()).device)["accuracy"]
    net.load_state_dict(saved, strict=False)
    return {
        "epoch": epoch,
        "tau": tau,
        "expected_macs": expected,
        "argmax_macs": arch.macs(plan, depths) / arch.full_macs,
        "val_accuracy": accuracy,
        "seconds": time.perf_counter() - began,
    }


def replay_skip(model: nn.Module, step: Mapping[str, Any]) -> nn.Module:
    """Redo a recorded ``"skip"`` step: the listed blocks become ``nn.Identity``."""
    skip_blocks_(model, list(step["blocks"]))
    return model
