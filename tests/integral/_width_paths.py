"""One differentiable width path at its smallest widths, run as its own process.

``python tests/integral/_width_paths.py PATH`` with PATH one of ``shrink`` (the reproducer
of the "double free or corruption" crash: partition tuning of resnet20 at 15% of the MACs),
``integral`` / ``slice`` (one epoch of width-random training down to 1 channel per group)
or ``search`` (one epoch of TAS with candidate widths down to 5%). Exits 0 and prints
``PATH ok`` when every loss and the result are finite; a native crash kills the process,
which `test_width_paths.py` reports as a failing test rather than a dead test run.
"""

from __future__ import annotations

import math
import sys

import torch

import anywidth
from anywidth.data import make_loaders
from anywidth.train import TrainConfig


def main(path: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = anywidth.create_model("resnet20", num_classes=10, in_channels=1).eval()
    if path == "shrink":
        from anywidth.integral import to_integral
        from anywidth.slim import shrink

        data = [(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))) for _ in range(20)]
        inn = to_integral(model, torch.zeros(1, 1, 28, 28))
        small, report = shrink(inn, data, target_macs=0.15, tune_steps=10)
        # The plan of the issue: groups of 6, 7, 12 and 24 channels.
        assert sorted(set(report.plan.values())) == [6, 7, 12, 24], report.plan
        out = small(data[0][0])
    else:
        loaders = make_loaders("digits", batch_size=64)
        x = next(iter(loaders.train))[0][:1]
        if path == "search":
            from anywidth.search import SearchConfig, search_shape

            config = SearchConfig(
                target_macs=0.1, width_ratios=(0.05, 0.1, 0.2, 1.0), epochs=1, depth=False
            )
            result = search_shape(model, x, loaders, config)
            out = result.materialize()(x)
        else:
            from anywidth.slim import WidthTrainConfig, train_any_width

            width = WidthTrainConfig(method=path, min_ratio=0.05, random_plans=1)
            wide, record = train_any_width(model, x, loaders, TrainConfig(epochs=1), width)
            assert all(math.isfinite(v) for v in record.history[-1].values()), record
            assert min(wide.width_plan(0.05).values()) == 1
            out = wide.resample(0.05)(x)
    assert torch.isfinite(out).all(), f"{path}: non-finite output"
    print(path, "ok")


if __name__ == "__main__":
    main(sys.argv[1])
