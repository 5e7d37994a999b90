"""Extra any-width rows: variants of the INN's width-random training, one seed per run.

- ``nodes``: half as many nodes as channels (``IntegralConfig(nodes=0.5)``): every weight
  function is smooth between channels, so widths that sample between nodes interpolate a
  smooth function rather than blend unrelated channels.
- ``pace``: each narrower width's loss weighted by (m/n)² (`IntegralModel.loss_weight`,
  ``WidthTrainConfig(narrow_pace=2)``, the default): without it, the λ-gradient rescaling
  that trains the full width at the discrete pace trains a width m at (n/m)² times that
  pace (and moves the full-width weights n/m times as far).
- ``pace1``: weighted by m/n (``narrow_pace=1``): the full-width weights move at the
  discrete pace.
- ``no-pace``: the same without it (what the main table's "INN trained" rows ran).

Same recipe as `any_width.py` (its cached base model, epochs, lr and width draws); rows go
to ``<record>.extra.json``, which ``any_width.py --table-only`` merges.

Run: .venv/bin/python benchmarks/any_width_variant.py DATA SEED [--model resnet20]
    [--variant nodes|pace|pace1|no-pace] [--tune]
"""

from __future__ import annotations

import argparse

import any_width as aw
import torch

from anywidth.integral import IntegralConfig
from anywidth.slim import WidthTrainConfig, train_any_width
from anywidth.train import TrainConfig

VARIANTS = {
    # variant: (row label, IntegralConfig options, narrow_pace)
    "nodes": ("INN nodes 0.5, trained", {"nodes": 0.5}, 0.0),
    "pace": ("INN trained + narrow pace", {}, 2.0),
    "pace1": ("INN trained + narrow pace 1", {}, 1.0),
    "no-pace": ("INN trained, no narrow pace", {}, 0.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=list(aw.RECIPES))
    parser.add_argument("seed", type=int)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--variant", choices=list(VARIANTS), default="nodes")
    parser.add_argument("--tune", action="store_true", help="also the partition-tuned rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data, seed, name = args.data, args.seed, args.model
    label, options, pace = VARIANTS[args.variant]
    record = aw.Record(aw.OUT / f"{data}-{name}-s{seed}-t50.extra.json")
    recipe, base_epochs, epochs = aw.RECIPES[data]
    torch.manual_seed(seed)
    model, loaders = aw.trained(name, epochs=base_epochs, seed=seed, data=data, **recipe)
    aw.loaders_of[:] = [loaders]
    x = next(iter(loaders.test))[0][:1]
    config = TrainConfig(epochs=epochs, lr=0.02, weight_decay=5e-4, seed=seed)
    width = WidthTrainConfig(method="integral", min_ratio=0.3, narrow_pace=pace, seed=seed)
    wide, result = train_any_width(model, x, loaders, config, width, IntegralConfig(**options))
    kind = "integral-nodes0.5" if args.variant == "nodes" else f"integral-{args.variant}"
    record.data["seconds"][kind] = sum(h["seconds"] for h in result.history)
    wide.eval()
    aw.measure(record, f"{label} {epochs} ep.", aw.plans(wide, unseen=True), wide.resample)
    if args.tune:
        aw.measure(record, f"{label} {epochs} ep. + partition tuning 50", aw.plans(wide),
                   lambda plan: aw.tuned(wide, plan, loaders, 50))  # fmt: skip


if __name__ == "__main__":
    main()
