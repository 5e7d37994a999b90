"""``anywidth info --timm NAME | --torchvision NAME | --model-spec SOURCE:NAME``: is my model
understood? Its channel groups, which of them can be cut, and why the others cannot."""

from __future__ import annotations

import argparse

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


def spec_info(args: argparse.Namespace, spec: str) -> int:
    from anywidth.measure import count_macs, count_params
    from anywidth.models.external import group_status, load_model_spec

    model, example = load_model_spec(spec, input_size=args.input_size)
    rows, messages, unknown = group_status(model, example)
    free = [r for r in rows if r[2] == "resizable"]
    print(
        f"{spec}: {type(model).__name__}, {human(count_params(model))} params, "
        f"{human(count_macs(model, example))} MACs at input {tuple(example.shape)}"
    )
    print(format_table(["channel group", "channels", "status"], rows))
    print(
        f"{len(free)} of {len(rows)} groups resizable "
        f"({sum(r[1] for r in free)} of {sum(r[1] for r in rows)} channels)"
    )
    for message in messages:
        if "cannot trace" in message:
            print(f"note: {message}")
    if (len(free) < len(rows) - 2 and unknown) or not free:
        print(
            "Groups fixed by an unknown operation keep their width: give the layer a rule with "
            "anywidth.graph.register_layer, or make it a leaf module (see docs/pruning.md)."
        )
    return 0
