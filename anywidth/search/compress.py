"""`anywidth.compress`'s TAS step: search the shape, build it, distil it from the original."""

from __future__ import annotations

from torch import nn

from anywidth.compression import Compressed, register_handler
from anywidth.search.config import SearchConfig
from anywidth.search.distill import distill_
from anywidth.search.search import search_shape
from anywidth.train import TrainConfig

__all__: list[str] = []


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("s" if n != 1 else "")


@register_handler(SearchConfig, "search")
def _compress(model: nn.Module, example_input, config: SearchConfig, data) -> Compressed:
    if data is None:
        raise ValueError(
            "data: SearchConfig trains a supernet on data; pass data= (a Loaders record "
            "or a training DataLoader)"
        )
    result = search_shape(model, example_input, data, config)
    small = result.materialize()
    what = "widths and depths" if config.depth else "widths"
    done = [f"searched {what} for {_epochs(config.epochs)} (TAS)"]
    if result.skipped:
        done.append(f"skipped blocks {', '.join(result.skipped)}")
    if config.distill_epochs:
        train = TrainConfig(epochs=config.distill_epochs, lr=config.lr,
                            weight_decay=config.weight_decay, seed=config.seed)  # fmt: skip
        distill_(small, model, data, train)
        done.append(f"distilled from the original for {_epochs(config.distill_epochs)}")
    return Compressed(small, dict(result.plan), done)
