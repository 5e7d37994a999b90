"""`LamStore`: the λ tensors of an IntegralModel, and the maps between λ and discrete tensors.

λ is held under the source's names (``lam.layer1.0.conv1.weight``): parameters of the
source become ``nn.Parameter``\\ s, buffers stay buffers, so ``state_dict`` keys read like
the source's and optimizers see only real parameters. The store knows each tensor's
`TensorLayout`, so it fits λ to discrete tensors (`LamStore.fit`,
`LamStore.refit_buffers_`) and samples discrete tensors from λ (`LamStore.sample`) at the
`GroupSampler`\\ s of a plan. A tensor the source holds under several names (tied
weights) has one λ, under its first name; its other names (aliases) sample to the same
tensor, so every use of it trains that one λ.

The λ of one dtype and device are views of one flat tensor, so they share one in-place
version counter: `LamStore.version_tensors` lets the eval cache check a few counters per
call instead of one per λ (reading every λ's counter on every call touches every λ object,
which slows the forward that follows by more than the reads cost). Whatever may put other
tensor objects in place or break the sharing (``.to()``, copies, pickles, loading with
``assign=True`` or with swapped tensors, `LamStore.unshare`) falls back to every λ.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping

import torch
import torch.__future__
from torch import Tensor, nn

from anywidth.integral._layout import GroupSampler, TensorLayout, fit_lam, sample_tensor
from anywidth.integral.partition import uniform_points
from anywidth.integral.quadrature import quadrature_weights

__all__ = ["LamStore"]


class LamStore(nn.Module):
    """A module tree mirroring the source's names, holding one λ per source tensor.

    Args:
        layouts: ``{source tensor name: layout}``, aliases included; `add` stores the tensors.
        aliases: ``{alias: first name}`` of tied tensors (see `tied_aliases`).
    """

    def __init__(
        self, layouts: Mapping[str, TensorLayout], aliases: Mapping[str, str] | None = None
    ) -> None:
        super().__init__()
        self.layouts = dict(layouts)
        self.aliases = dict(aliases or {})
        self._slots: list[tuple[str, nn.Module, str, bool]] = []
        self._shared = _Shared()
        self.register_load_state_dict_pre_hook(_unshare_if_swapping)

    @classmethod
    def fit(
        cls,
        tensors: Mapping[str, Tensor],
        layouts: Mapping[str, TensorLayout],
        samplers: Mapping[str, GroupSampler],
        method: str,
        *,
        aliases: Mapping[str, str] | None = None,
        init: bool = True,
    ) -> LamStore:
        """The store whose λ reproduce ``tensors`` at the full-width ``samplers``.

        Args:
            tensors: ``{name: source tensor}`` for every layout.
            layouts: their layouts.
            samplers: every resizable group at full width.
            method: how groups with fewer nodes than channels are fitted (`fit_lam`).
            aliases: ``{alias: first name}`` of tied tensors.
            init: False: zeros of λ's shape, to be loaded.
        """
        store = cls(layouts, aliases)
        for name, layout in store.own_layouts().items():
            tensor = tensors[name]
            if init:
                value = fit_lam(tensor, layout, samplers, method)
            else:
                value = tensor.new_zeros(layout.lam_shape())
            requires_grad = tensor.requires_grad and layout.is_param
            store.add(name, value.clone(), is_param=layout.is_param, requires_grad=requires_grad)
        store.share_()
        return store

    def add(self, name: str, value: Tensor, *, is_param: bool, requires_grad: bool) -> None:
        """Store ``value`` (not copied) under the dotted source name ``name``."""
        owner: nn.Module = self
        *path, attr = name.split(".")
        for part in path:
            if part not in owner._modules:
                owner.add_module(part, nn.Module())
            owner = owner._modules[part]
        if is_param:
            owner.register_parameter(attr, nn.Parameter(value, requires_grad=requires_grad))
        else:
            owner.register_buffer(attr, value)
        self._slots.append((name, owner, attr, is_param))

    def own_layouts(self) -> dict[str, TensorLayout]:
        """The layouts of the names that hold a λ (every name but the aliases)."""
        return {n: layout for n, layout in self.layouts.items() if n not in self.aliases}

    def tensors(self) -> dict[str, Tensor]:
        """``{source name: λ}`` in insertion order (current objects, after ``.to()`` too)."""
        return {
            name: (owner._parameters if is_param else owner._buffers)[attr]
            for name, owner, attr, is_param in self._slots
        }

    @torch.no_grad()
    def share_(self) -> None:
        """Make the λ of each dtype and device views of one flat tensor (new objects, same
        values): do it before anything holds the λ, as `fit` does."""
        slots: dict[tuple, list] = {}
        for slot, value in zip(self._slots, self.tensors().values(), strict=True):
            slots.setdefault((value.dtype, value.device), []).append((slot, value))
        bases = []
        for (dtype, device), members in slots.items():
            flat = torch.empty(sum(v.numel() for _, v in members), dtype=dtype, device=device)
            offset = 0
            for (_, owner, attr, is_param), value in members:
                view = flat[offset : offset + value.numel()].view(value.shape)
                view.copy_(value)
                offset += value.numel()
                if is_param:
                    owner._parameters[attr] = nn.Parameter(view, value.requires_grad)
                else:
                    owner._buffers[attr] = view
            bases.append(flat)
        self._shared = _Shared(bases, list(self.tensors().values()))

    def unshare(self) -> None:
        """Stop relying on shared version counters (`version_tensors` lists every λ)."""
        self._shared = _Shared()

    def version_tensors(self) -> list[Tensor]:
        """Tensors whose in-place version counters move whenever any λ changes in place.

        The flat tensors of `share_` while every λ is still the view made there, else
        every λ.
        """
        tensors = list(self.tensors().values())
        shared = self._shared
        if shared.bases and len(tensors) == len(shared.members):
            if all(map(operator.is_, tensors, shared.members)):
                return list(shared.bases)
        return tensors

    def _apply(self, fn, recurse: bool = True):
        self.unshare()  # .to(), .double()...: new tensors, or swapped ones
        return super()._apply(fn, recurse)

    def float_like(self) -> Tensor:
        """A floating λ, for the dtype and device of grids and quadrature weights."""
        for value in self.tensors().values():
            if value.is_floating_point():
                return value
        return torch.empty(0)

    def sample(self, samplers: Mapping[str, GroupSampler]) -> dict[str, Tensor]:
        """The discrete tensors at ``samplers``: ``{source name: tensor}``, aliases included
        (the same tensor as their first name's).

        Differentiable with respect to λ and the samplers' points. Buffers are always fresh
        tensors: a training-mode BatchNorm updates them in place.
        """
        lams = self.tensors()
        out = {}
        for name, layout in self.own_layouts().items():
            lam = lams[name]
            value = sample_tensor(lam, layout, samplers) if layout.dims else lam
            out[name] = value.clone() if value is lam and not layout.is_param else value
        for alias, name in self.aliases.items():
            out[alias] = out[name]
        return out

    @torch.no_grad()
    def scales(self, rule: str) -> dict[str, Tensor]:
        """``{λ name: tensor broadcastable to λ}``: the node quadrature weights of ``rule``.

        One entry for every λ parameter with an integrated dimension: how much smaller its
        entries' weights are at full width (see `IntegralModel.lam_scales`).
        """
        out = {}
        like = self.float_like()
        options = {"dtype": like.dtype, "device": like.device}
        for name, layout in self.own_layouts().items():
            if not layout.is_param or not any(d.integrated for d in layout.dims):
                continue
            scale = torch.ones((), **options)
            for d in layout.dims:
                if not d.integrated:
                    continue
                parts = []
                for seg in d.segments:
                    if seg.group is None:
                        parts.append(torch.ones(seg.length, **options))
                        continue
                    q = quadrature_weights(uniform_points(seg.nodes, **options), rule)  # (nodes,)
                    parts.append(q.repeat_interleave(seg.block))
                shape = [1] * len(layout.shape)
                shape[d.dim] = -1
                scale = scale * torch.cat(parts).reshape(shape)
            out[name] = scale
        return out

    @torch.no_grad()
    def refit_buffers_(
        self, buffers: Mapping[str, Tensor], samplers: Mapping[str, GroupSampler]
    ) -> None:
        """Refit the λ of buffers so that sampling at ``samplers`` gives ``buffers``; in place.

        Raises:
            KeyError: a name that is not a buffer of the source.
        """
        lams = self.tensors()
        for name, value in buffers.items():
            name = self.aliases.get(name, name)
            layout = self.layouts.get(name)
            if layout is None or layout.is_param:
                raise KeyError(f"{name!r} is not a buffer of the source model")
            value = value.to(device=lams[name].device, dtype=lams[name].dtype)
            if layout.dims:
                value = fit_lam(value, layout, samplers, "lstsq", refit_points=True)
            lams[name].copy_(value)

    def __repr__(self) -> str:
        params = sum(1 for _ in self.parameters())
        buffers = sum(1 for _ in self.buffers())
        return f"LamStore({params} parameters, {buffers} buffers)"


class _Shared:
    """The flat tensors of `LamStore.share_` and the λ objects viewing them (or nothing).

    Copies and pickles come back empty: their tensors no longer share version counters.
    """

    def __init__(self, bases: list[Tensor] | None = None, members: list[Tensor] | None = None):
        self.bases, self.members = bases or [], members or []

    def __deepcopy__(self, memo: dict) -> _Shared:
        return _Shared()

    def __reduce__(self):
        return (_Shared, ())


def _unshare_if_swapping(module: LamStore, *_args) -> None:
    """Loading with ``torch.__future__`` tensor swapping replaces version counters."""
    if torch.__future__.get_swap_module_params_on_conversion():
        module.unshare()
