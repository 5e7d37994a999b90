"""INN pipeline A (and B/C) on super-resolution: SRCNN ×3 and EDSR ×4 on real photographs.

Data: ``sr-skimage`` (scikit-image's bundled photographs; six held-out test photographs,
whole images, Y-channel PSNR/SSIM with a ``scale``-pixel border crop). Per model and seed:

- **bicubic**: the interpolation every SR model must beat (no training);
- **discrete**: the zoo model trained with Adam (SRCNN on L2, EDSR on L1);
- **INN (scratch)**: the same model converted at initialisation and trained with random widths
  (full + smallest width per step, smallest = 50%) for the same epochs;
- **INN-init**: the trained discrete model converted (channels ordered), as converted and after
  a short width-random fine-tune (a quarter of the epochs, a tenth of the learning rate).

Every row reports full-width PSNR/SSIM and the PSNR at 50% of the MACs without fine-tuning for
that budget (discrete: L1 pruning; INNs: resampling). The pruning table (pipelines B/C) takes
each seed's discrete model to 75/50/35% of the MACs: L1 pruning; L1 + bias tuning (the
equal-budget control: as many Adam steps as partition tuning); the converted INN resampled;
the converted INN resampled after partition tuning.

Per-(model, seed) results are cached as JSON under ``runs/superres`` so a run can be split over
processes and resumed; the tables are written from whatever is there.

Run: .venv/bin/python benchmarks/superres.py [--models srcnn edsr] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import write_table
from torch.nn import functional as F

from anywidth.data import make_loaders
from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import WidthTrainConfig, train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.measure import count_macs
from anywidth.metrics import psnr, ssim
from anywidth.models import create_model
from anywidth.pruning import PruneConfig, prune
from anywidth.train import TrainConfig, image_loss, train_
from anywidth.train.task import super_resolution

MODELS = {"srcnn": (3, "l2"), "edsr": (4, "l1")}
BUDGETS = (0.75, 0.5, 0.35)


@torch.no_grad()
def scores(model, loaders, scale: int) -> dict:
    """Per-image Y PSNR and SSIM on the test photographs."""
    model.eval()
    out = {"psnr": [], "ssim": []}
    for low, high in loaders.test:
        sr = model(low)
        out["psnr"].append(float(psnr(sr, high, scale)))
        out["ssim"].append(float(ssim(sr, high, scale)))
    return out


class Bicubic(torch.nn.Module):
    """Bicubic interpolation as a model: the baseline every row must beat."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        return F.interpolate(low, scale_factor=self.scale, mode="bicubic", align_corners=False)


def adam(epochs: int, lr: float, seed: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=lr, optimizer="adamw", weight_decay=0.0, seed=seed)


def pruned(model, x, budget: float):
    return prune(model, x, PruneConfig(target_macs=budget, importance="l1"))[0].eval()


def bias_control(small, loaders, steps: int, kind: str):
    """The equal-budget control: ``steps`` Adam steps on the biases only, weights frozen."""
    criterion = F.l1_loss if kind == "l1" else F.mse_loss
    biases = [p for n, p in small.named_parameters() if n.endswith("bias")]
    optimizer = torch.optim.Adam(biases, lr=1e-3)
    batches = iter(loaders.train)
    small.train()
    for _ in range(steps):
        try:
            low, high = next(batches)
        except StopIteration:
            batches = iter(loaders.train)
            low, high = next(batches)
        loss = criterion(small(low), high)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return small.eval()


def run_one(name: str, seed: int, args) -> dict:
    scale, kind = MODELS[name]
    loaders = make_loaders("sr-skimage", scale=scale, batch_size=16, patch=args.patch,
                           patches=args.patches, seed=seed)  # fmt: skip
    x = next(iter(loaders.train))[0][:1]
    task = super_resolution(scale, kind)
    metric = task.metric
    epochs = args.epochs[name]
    rec: dict = {"model": name, "seed": seed, "scale": scale, "epochs": epochs}

    torch.manual_seed(seed)
    model = create_model(name, scale=scale)
    began = time.perf_counter()
    train_(model, loaders, adam(epochs, args.lr, seed), loss_fn=image_loss(kind), metric=metric)
    rec["discrete"] = scores(model, loaders, scale) | {"seconds": time.perf_counter() - began}
    rec["discrete"]["half"] = scores(pruned(model, x, 0.5), loaders, scale)["psnr"]

    torch.manual_seed(seed)
    inn = to_integral(create_model(name, scale=scale), x, IntegralConfig(reorder=False))
    width = WidthTrainConfig(min_ratio=0.5, random_plans=0, seed=seed)
    began = time.perf_counter()
    train_integral_(inn, loaders, adam(epochs, args.lr, seed), width, task)
    rec["inn"] = scores(inn.resample(None), loaders, scale)
    rec["inn"] |= {"seconds": time.perf_counter() - began}
    rec["inn"]["half"] = scores(inn.resample(target_macs=0.5), loaders, scale)["psnr"]

    began = time.perf_counter()
    init = to_integral(model, x)
    rec["init"] = scores(init.resample(None), loaders, scale)
    rec["init"] |= {"seconds": time.perf_counter() - began}
    rec["init"]["half"] = scores(init.resample(target_macs=0.5), loaders, scale)["psnr"]
    rec["pruning"] = prune_rows(model, init, loaders, x, scale, kind, args.tune_steps)

    began = time.perf_counter()
    ft_epochs = max(1, epochs // 4)
    train_integral_(init, loaders, adam(ft_epochs, args.lr / 10, seed), width, task)
    rec["init_ft"] = scores(init.resample(None), loaders, scale)
    rec["init_ft"] |= {"seconds": time.perf_counter() - began, "epochs": ft_epochs}
    rec["init_ft"]["half"] = scores(init.resample(target_macs=0.5), loaders, scale)["psnr"]
    rec["bicubic"] = scores(Bicubic(scale), loaders, scale) | {"seconds": 0}
    return rec


def prune_rows(model, init, loaders, x, scale, kind, steps) -> dict:
    full = count_macs(model, x)
    out = {}
    for budget in BUDGETS:
        l1 = pruned(model, x, budget)
        plan = init.width_plan(target_macs=budget)
        tuned = tune_partition(init, plan, loaders.train, TuneConfig(steps=steps), task=kind)
        rows = {
            "L1 pruning": l1,
            f"L1 + bias tuning ({steps} steps)": bias_control(
                pruned(model, x, budget), loaders, steps, kind
            ),  # fmt: skip
            "INN resampled": init.resample(plan),
            f"INN + partition tuning ({steps} steps)": tuned.resample(plan),
        }
        for method, small in rows.items():
            score = scores(small, loaders, scale)
            out[f"{budget}|{method}"] = {
                "macs": count_macs(small, x) / full,
                "psnr": statistics.mean(score["psnr"]),
                "ssim": statistics.mean(score["ssim"]),
            }
    return out


def _mean_std(values: list[float], digits: int = 2) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "–"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


METHODS = {
    "bicubic": "bicubic",
    "discrete": "discrete",
    "inn": "INN (scratch)",
    "init": "INN-init (converted)",
    "init_ft": "INN-init + fine-tune",
}


def tables(records: list[dict]) -> None:
    rows, per_image, prune_table = [], [], []
    for name in MODELS:
        recs = [r for r in records if r["model"] == name]
        if not recs:
            continue
        for key, label in METHODS.items():
            means = [statistics.mean(r[key]["psnr"]) for r in recs]
            ssims = [statistics.mean(r[key]["ssim"]) for r in recs]
            half = [statistics.mean(r[key]["half"]) for r in recs if "half" in r[key]]
            secs = statistics.mean(r[key]["seconds"] for r in recs)
            rows.append([f"{name} ×{recs[0]['scale']}", label, len(recs), _mean_std(means),
                         _mean_std(ssims, 3), _mean_std(half) if half else "–",
                         f"{secs:.0f}"])  # fmt: skip
            images = zip(*(r[key]["psnr"] for r in recs), strict=True)
            per_image.append([name, label, *(f"{statistics.mean(v):.2f}" for v in images)])
        keys = recs[0]["pruning"].keys()
        for key in keys:
            budget, method = key.split("|")
            values = [r["pruning"][key]["psnr"] for r in recs]
            ssims = [r["pruning"][key]["ssim"] for r in recs if "ssim" in r["pruning"][key]]
            macs = statistics.mean(r["pruning"][key]["macs"] for r in recs)
            prune_table.append([name, f"{float(budget):.0%}", method, f"{macs:.1%}",
                                _mean_std(values), _mean_std(ssims, 3)])  # fmt: skip
    write_table(
        "superres",
        ["model", "method", "seeds", "PSNR (dB)", "SSIM", "PSNR at 50% MACs", "train s"],
        rows,
        notes=NOTES,
    )
    write_table("superres_images", ["model", "method", *TEST_NAMES], per_image)
    write_table("superres_pruning", ["model", "budget", "method", "MACs", "PSNR (dB)", "SSIM"],
                prune_table)  # fmt: skip


TEST_NAMES = ["astronaut", "camera", "chelsea", "coffee", "coins", "rocket"]
NOTES = """
PSNR/SSIM: Y channel, border crop = scale, mean over the six held-out photographs of
sr-skimage (astronaut, camera, chelsea, coffee, coins, rocket; whole images), then mean ± std
over seeds. Budget (CPU, one thread per process): SRCNN 8 epochs, EDSR (4 blocks × 32) 10
epochs, 512 random 16×16 low-resolution patches per epoch, batch 16, Adam lr 2e-3, cosine;
INN (scratch): the same epochs, full + smallest width (50% channels) per step; INN-init
fine-tune: a quarter of the epochs at lr 2e-4. Trained on 12 photographs (textures and
micrographs among them), so absolute PSNR is not comparable with DIV2K-trained papers.
"PSNR at 50% MACs": no fine-tuning for that budget (discrete: L1 pruning; INNs: resampled).
"train s": wall seconds of that row's training (conversion only for INN-init), on a shared
2-core machine under heavy load: compare within a column only roughly.
Per-image values: superres_images.md; pipelines B/C: superres_pruning.md; findings:
docs/super_resolution.md. This run: the default options, as two processes (`--models srcnn`,
`--models edsr`) sharing the cache, then the command above to write the tables.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--srcnn-epochs", type=int, default=8)
    parser.add_argument("--edsr-epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--patch", type=int, default=16, help="LR patch side")
    parser.add_argument("--patches", type=int, default=512, help="patches per epoch")
    parser.add_argument("--tune-steps", type=int, default=50)
    parser.add_argument("--cache", type=Path, default=Path("runs/superres"))
    parser.add_argument("--tables-only", action="store_true")
    args = parser.parse_args()
    args.epochs = {"srcnn": args.srcnn_epochs, "edsr": args.edsr_epochs}
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.tables_only:
        for name in args.models:
            for seed in args.seeds:
                path = args.cache / f"{name}_seed{seed}.json"
                if path.exists():
                    continue
                path.write_text(json.dumps(run_one(name, seed, args), indent=1))
    records = [json.loads(p.read_text()) for p in sorted(args.cache.glob("*_seed*.json"))]
    tables(records)


if __name__ == "__main__":
    main()
