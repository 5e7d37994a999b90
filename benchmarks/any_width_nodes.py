"""Extra any-width row: the INN with half as many nodes as channels, trained with random widths.

Fewer nodes than channels make every weight function smooth between channels, so widths
that sample between nodes are interpolations of a smooth function rather than blends of
unrelated channels. Same recipe as `any_width.py` (its cached base model, epochs, lr and
width draws); rows go to ``<record>.extra.json``, which ``any_width.py --table-only``
merges.

Run: .venv/bin/python benchmarks/any_width_nodes.py DATA SEED
"""

from __future__ import annotations

import argparse

import any_width as aw
import torch

from anywidth.integral import IntegralConfig
from anywidth.slim import WidthTrainConfig, train_any_width
from anywidth.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=list(aw.RECIPES))
    parser.add_argument("seed", type=int)
    parser.add_argument("--nodes", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data, seed = args.data, args.seed
    record = aw.Record(aw.OUT / f"{data}-resnet20-s{seed}-t50.extra.json")
    options, base_epochs, epochs = aw.RECIPES[data]
    torch.manual_seed(seed)
    model, loaders = aw.trained("resnet20", epochs=base_epochs, seed=seed, data=data, **options)
    aw.loaders_of[:] = [loaders]
    x = next(iter(loaders.test))[0][:1]
    config = TrainConfig(epochs=epochs, lr=0.02, weight_decay=5e-4, seed=seed)
    width = WidthTrainConfig(method="integral", min_ratio=0.3, seed=seed)
    integral = IntegralConfig(nodes=args.nodes)
    wide, result = train_any_width(model, x, loaders, config, width, integral)
    record.data["seconds"][f"integral-nodes{args.nodes}"] = sum(
        h["seconds"] for h in result.history
    )
    name = f"INN nodes {args.nodes}, trained {epochs} ep."
    aw.measure(record, name, aw.plans(wide.eval(), unseen=True), wide.resample)


if __name__ == "__main__":
    main()
