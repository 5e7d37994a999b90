"""Encoder distillation helpers of `anywidth.models.hf` on the tiny BERT (no download)."""

from __future__ import annotations

import copy

import pytest
import torch

from anywidth.graph import cut
from anywidth.models.hf import distill_encoder_, distill_loss, teacher_targets
from tests.graph._transformer import TinyBert, tiny_inputs


def test_distill_moves_a_cut_encoder_towards_the_full_one_in_place():
    torch.manual_seed(0)
    full = TinyBert(head=False).eval()
    batches = [tiny_inputs(seed=s) for s in range(4)]
    targets = teacher_targets(full, batches)
    small = cut(full, batches[0], {"blocks.0.fc1:out": list(range(8))}).eval()
    before, full_before = copy.deepcopy(small), copy.deepcopy(full.state_dict())

    def loss(net) -> float:
        with torch.no_grad():
            return sum(
                distill_loss(net(*b), t, b[1]).item() for b, t in zip(batches, targets, strict=True)
            )

    assert distill_encoder_(small, batches, targets, steps=40, lr=1e-2) is small
    assert loss(small) < 0.5 * loss(before)
    for name, tensor in full.state_dict().items():  # the teacher does not move
        assert torch.equal(tensor, full_before[name])
    with pytest.raises(ValueError, match="4 batches but 3 targets"):
        distill_encoder_(small, batches, targets[:3], steps=1)
