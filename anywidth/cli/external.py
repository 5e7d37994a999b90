"""``anywidth info --timm NAME | --torchvision NAME | --model-spec SOURCE:NAME``: is my model
understood? Its channel groups, which of them can be cut, and why the others cannot."""

from __future__ import annotations

import argparse
import logging
import re

from anywidth.cli._table import format_table, human

__all__ = ["add_model_spec_options", "model_spec_of", "spec_info"]


def add_model_spec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timm", default=None, metavar="NAME", help="a timm model, random weights")
    p.add_argument("--torchvision", default=None, metavar="NAME", help="a torchvision model")
    p.add_argument(
        "--model-spec",
        default=None,
        metavar="SOURCE:NAME",
        help="ultralytics:yolov8n.yaml, smp:Unet:resnet34, hf:ViTModel or package.module:factory "
        "(needs pip install -e '.[models]')",
    )


def model_spec_of(args: argparse.Namespace) -> str | None:
    """The model spec the options name, or None; naming more than one is an error."""
    given = [
        f"{source}:{name}"
        for source, name in (("timm", args.timm), ("torchvision", args.torchvision))
        if name
    ]
    if args.model_spec:
        given.append(args.model_spec)
    if len(given) > 1:
        raise ValueError(f"name one model, got {', '.join(given)}")
    return given[0] if given else None


class _Collect(logging.Handler):
    """Keeps the graph's messages: which front end traced the model, why groups are fixed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _reasons(messages: list[str]) -> dict[str, str]:
    """``{group: why}`` from the trace's warnings."""
    out = {}
    for message in messages:
        found = re.search(r"^(.*); fixing channel group\(s\) (.*), which will not be", message)
        if found:
            for name in found.group(2).split(", "):
                out.setdefault(name, found.group(1))
    return out


def spec_info(args: argparse.Namespace, spec: str) -> int:
    from anywidth.graph import analyze_channels
    from anywidth.measure import count_macs, count_params
    from anywidth.models.external import load_model_spec

    model, example = load_model_spec(spec, input_size=args.input_size)
    collect = _Collect()
    graph_log = logging.getLogger("anywidth.graph")
    level = graph_log.level
    graph_log.addHandler(collect)
    graph_log.setLevel(logging.INFO)
    try:
        groups = analyze_channels(model, example).groups
    finally:
        graph_log.removeHandler(collect)
        graph_log.setLevel(level)
    why = _reasons(collect.messages)
    rows = []
    for g in groups:
        if not g.fixed:
            status = "resizable"
        elif g.name in why:
            status = f"fixed: {why[g.name][:90]}"
        elif g.name.startswith("input:"):
            status = "fixed: model input"
        else:
            status = "fixed: model output, or read next to a fixed operation"
        rows.append([g.name, g.size, status])
    free = [g for g in groups if not g.fixed]
    print(
        f"{spec}: {type(model).__name__}, {human(count_params(model))} params, "
        f"{human(count_macs(model, example))} MACs at input {tuple(example.shape)}"
    )
    print(format_table(["channel group", "channels", "status"], rows))
    print(
        f"{len(free)} of {len(groups)} groups resizable "
        f"({sum(g.size for g in free)} of {sum(g.size for g in groups)} channels)"
    )
    for message in collect.messages:
        if "cannot trace" in message:
            print(f"note: {message}")
    if (len(free) < len(groups) - 2 and why) or not free:
        print(
            "Groups fixed by an unknown operation keep their width: give the layer a rule with "
            "anywidth.graph.register_layer, or make it a leaf module (see docs/pruning.md)."
        )
    return 0
