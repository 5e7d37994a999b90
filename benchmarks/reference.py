"""Reference models every later benchmark starts from: trained to real accuracy, committed.

resnet20, resnet56 and mobilenetv2 (CIFAR-style strides, ``small_input=True``) on the full
Fashion-MNIST (the 60,000 training images less a stratified 10% validation split that
`anywidth compare` chooses on: 54,000 train, 6,000 val; tested on the 10,000 test images),
and resnet20 on the bundled digits. Each run trains under ``runs/reference/<model>-<data>``
(the trainer's exact resume: a killed run continues where it stopped) and, when done, writes
``benchmarks/reference/<model>-<data>.safetensors`` (the model, its data record and test
accuracy; `anywidth.train.load_model` and `anywidth compare` read it) and
``<model>-<data>.json`` (the recipe, the command, the seconds spent over every session,
the test accuracy, torch version and threads).

Recipe (Fashion-MNIST): SGD momentum 0.9, lr 0.1 with 1 warm-up epoch then cosine to 0,
weight decay 5e-4, batch 128, 30 epochs, random crop (3 px) and horizontal flip. Digits:
the benchmarks' usual recipe (lr 0.05, 2 warm-up epochs, batch 64, 15 epochs).

Run (the lead, on an otherwise idle core; hours on CPU):
    .venv/bin/python benchmarks/reference.py                # all four
    .venv/bin/python benchmarks/reference.py --models resnet20 --data digits
Check on a tiny setting (minutes; writes under runs/reference-check, nothing committed):
    .venv/bin/python benchmarks/reference.py --check
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _common import environment

from anywidth.data import make_loaders
from anywidth.measure import count_macs, count_params, evaluate
from anywidth.models import create_model
from anywidth.train import TrainConfig, load_model, read_checkpoint, save_checkpoint, train_

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FASHION = {"epochs": 30, "lr": 0.1, "warmup_epochs": 1, "weight_decay": 5e-4, "batch_size": 128}
RECIPES = {
    ("resnet20", "fashion-mnist"): FASHION,
    ("resnet56", "fashion-mnist"): FASHION,
    ("mobilenetv2", "fashion-mnist"): FASHION,
    ("resnet20", "digits"): {"epochs": 15, "lr": 0.05, "warmup_epochs": 2,
                             "weight_decay": 5e-4, "batch_size": 64},
}  # fmt: skip
EXTRA_KWARGS = {"mobilenetv2": {"small_input": True}}
CHECK = {"limit": 600, "test_limit": 200}  # --check: a few hundred images, 1 epoch


def _loaders(data: str, batch_size: int, augment: bool, check: bool):
    options = dict(CHECK) if check and data == "fashion-mnist" else {}
    if data == "fashion-mnist":
        options["augment"] = augment
    return make_loaders(data, batch_size=batch_size, seed=0, **options), options


def train_reference(name: str, data: str, out: Path, runs: Path, check: bool = False) -> dict:
    """Train (or resume, or read back) one reference model; its JSON record."""
    recipe = dict(RECIPES[(name, data)], **({"epochs": 1, "warmup_epochs": 0} if check else {}))
    stem = f"{name}-{data}"
    record_path = out / f"{stem}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    loaders, options = _loaders(data, recipe["batch_size"], True, check)
    kwargs = {"num_classes": loaders.num_classes, "in_channels": loaders.in_channels,
              **EXTRA_KWARGS.get(name, {})}  # fmt: skip
    folder = runs / stem
    last = folder / "last.safetensors"
    spent_path = folder / "seconds.json"  # wall time of earlier sessions
    spent = json.loads(spent_path.read_text())["seconds"] if spent_path.exists() else 0.0
    config = TrainConfig(seed=0, **recipe)
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    done = last.exists() and read_checkpoint(last).meta.get("epoch") == recipe["epochs"]
    if not done:
        start = time.perf_counter()
        try:
            train_(model, loaders, config, checkpoint_dir=folder, model_name=name,
                   model_kwargs=kwargs, resume=last.exists())  # fmt: skip
        finally:
            folder.mkdir(parents=True, exist_ok=True)
            spent += time.perf_counter() - start
            spent_path.write_text(json.dumps({"seconds": spent}) + "\n")
    model, _ = load_model(last)
    plain = {k: v for k, v in options.items() if k != "augment"}  # compare scores plain images
    test, _ = _loaders(data, 256, False, check)
    accuracy = evaluate(model, test.test)["accuracy"]
    x = next(iter(test.test))[0][:1]
    data_record = {"name": data, "seed": 0, "options": plain}
    metrics = {
        "test_accuracy": accuracy,
        "macs": count_macs(model, x),
        "params": count_params(model),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / f"{stem}.safetensors", model, metrics=metrics, config=config,
                    extra={"data": data_record, "recipe": recipe})  # fmt: skip
    record = {"model": name, "kwargs": kwargs, "data": data_record, "recipe": recipe,
              "augment": "random crop + flip" if data == "fashion-mnist" else "none",
              "train_size": len(test.train.dataset), "val_size": len(test.val.dataset),
              "test_size": len(test.test.dataset), "test_accuracy": accuracy,
              "seconds": round(spent, 1), **metrics, **environment()}  # fmt: skip
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "mobilenetv2"])
    parser.add_argument("--data", nargs="+", default=["fashion-mnist", "digits"])
    parser.add_argument("--check", action="store_true",
                        help="1 epoch on 600 images, under runs/reference-check")  # fmt: skip
    args = parser.parse_args()
    out = ROOT / "runs" / "reference-check" if args.check else HERE / "reference"
    runs = ROOT / "runs" / ("reference-check-train" if args.check else "reference")
    for data in args.data:
        for name in args.models:
            if (name, data) not in RECIPES:
                continue
            record = train_reference(name, data, out, runs, args.check)
            path = out / f"{name}-{data}.safetensors"
            accuracy = 100 * record["test_accuracy"]
            print(f"{name} on {data}: test accuracy {accuracy:.2f}% in {record['seconds']:.0f} s"
                  f" -> {path}")  # fmt: skip


if __name__ == "__main__":
    main()
