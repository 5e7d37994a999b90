"""Follow channels through a traced model: the state every op rule reads and writes.

Each tensor-valued node gets an *info*:

- `Tracked(dim, slot, block)`: dimension ``dim`` holds the channels of ``slot``, each
  channel owning ``block`` consecutive entries (``block > 1`` after a flatten);
- `UNTRACKED`: anywidth does not know how this tensor's entries map to channels. Invariant:
  every dimension of every tensor that is not its tracked dimension holds only fixed groups
  (or none), so an untracked tensor meeting a tracked one fixes the tracked group;
- `ParamRef(name)`: a parameter or buffer of two or more dimensions read with ``get_attr``;
  an element-wise op can bind one of its dimensions to a group (a 1-d one is tracked on a
  provisional slot, a group only once tied to a layer's channels);
- a tuple of infos for ops returning several tensors; None for non-tensors.

Op rules (`_rules_ops`, the layer specs of `_layers_torch`) raise `NotUnderstood` for a case
they cannot follow; the node is then treated as unknown: the groups touching it are fixed,
with a logged warning that names the node. Tensors the trace lifts from ``forward``
(``torch.tensor(...)`` or ``torch.arange(n)`` written there: ``_tensor_constant0``) are
constants, not the model's: they are untracked and never members of a group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import fx, nn
from torch.fx.node import map_aggregate
from torch.fx.passes.shape_prop import ShapeProp, _extract_tensor_metadata

from anywidth.graph._rewrites import Rewrite
from anywidth.graph._slots import SlotTable
from anywidth.graph._trace import as_inputs, is_exported, trace
from anywidth.graph._types import GraphError
from anywidth.measure import eval_mode

logger = logging.getLogger("anywidth.graph")

__all__ = [
    "Tracked",
    "UNTRACKED",
    "ParamRef",
    "untracked_like",
    "NotUnderstood",
    "Call",
    "Channels",
    "LayerIO",
    "LayerCost",
    "FunctionalLayer",
    "Analyzer",
    "analyze",
]


@dataclass(frozen=True)
class Tracked:
    dim: int
    slot: int
    block: int = 1


class _Untracked:
    def __repr__(self) -> str:
        return "UNTRACKED"


UNTRACKED = _Untracked()


@dataclass(frozen=True)
class ParamRef:
    name: str


class NotUnderstood(Exception):
    """Raised by an op rule for a case whose channel semantics it cannot follow."""


@dataclass
class Call:
    """One node being analysed, with its concrete argument values and result."""

    node: fx.Node
    args: tuple
    kwargs: dict
    result: Any

    def pick(self, index: int, name: str, default: Any = None) -> tuple[Any, Any]:
        """(argument as written in the graph, its concrete value), positional or keyword."""
        if index < len(self.args):
            return self.node.args[index], self.args[index]
        if name in self.kwargs:
            return self.node.kwargs[name], self.kwargs[name]
        return None, default

    def tensor_operands(self) -> list[tuple[Any, torch.Tensor]]:
        """Every top-level tensor argument, as (graph argument, value)."""
        pairs = list(zip(self.node.args, self.args, strict=True))
        pairs += [(self.node.kwargs[k], v) for k, v in self.kwargs.items()]
        return [(n, v) for n, v in pairs if isinstance(v, torch.Tensor)]


@dataclass(frozen=True)
class Channels:
    """The channels a layer reads or writes: those of ``slot``, each owning ``block``
    consecutive entries of the dimension (``block > 1`` after a flatten)."""

    slot: int | None
    block: int = 1


@dataclass(frozen=True)
class LayerIO:
    """The channels one layer module reads and writes, recorded for `cut` to resize it.

    A layer with one value per channel (a norm) has ``inputs == outputs``; ``position`` is
    the entry of a LayerNorm's ``normalized_shape`` that holds the channels.
    """

    inputs: Channels
    outputs: Channels
    position: int = 0


@dataclass(frozen=True)
class LayerCost:
    """MACs of one layer call: ``coef * prod(new lengths of factors) // divisor``."""

    coef: int
    factors: tuple[Channels, ...]
    divisor: int = 1


@dataclass(frozen=True)
class FunctionalLayer:
    """A functional layer call (``F.conv2d(x, self.weight, ...)``) recorded for `cut`:
    ``owner`` holds its tensors, and ``resize(owner, io, length)`` updates the owner's
    attributes where it has them (``in_channels``, ``num_features``...)."""

    owner: str
    io: LayerIO
    resize: Callable[[nn.Module, LayerIO, Callable[[Channels], int]], None]


@dataclass
class Analyzer:
    """Channel bookkeeping for one traced model; filled node by node."""

    gm: fx.GraphModule
    table: SlotTable = field(default_factory=SlotTable)
    infos: dict[fx.Node, Any] = field(default_factory=dict)
    bindings: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    module_io: dict[str, LayerIO] = field(default_factory=dict)
    functional: list[FunctionalLayer] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    layers: list[LayerCost] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)  # the module of each entry of layers
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    quiet: bool = False  # log fixes at debug level (the caller has seen them already)
    # torch.export graphs read every parameter with get_attr, biases and norm weights
    # included: the layer rules bind those by name, so 1-d tensors are references too.
    params_by_ref: bool = False

    def __post_init__(self) -> None:
        self.tensor_names = tensor_names(self.gm)

    # -- helpers for rules -----------------------------------------------------------
    def info(self, arg: Any) -> Any:
        return self.infos.get(arg) if isinstance(arg, fx.Node) else None

    def fresh(self, size: int, label: str, fixed: bool = False) -> int:
        return self.table.new(size, label, fixed)

    def bind(self, name: str, dim: int, slot: int, block: int = 1) -> None:
        """Record that dimension ``dim`` of tensor ``name`` holds the channels of ``slot``."""
        old = self.bindings.get((name, dim))
        if old is None:
            self.bindings[(name, dim)] = (slot, block)
            return
        provisional = old[1] == 1 < block and self.table.is_provisional(old[0])
        if provisional and self.table.size[old[0]] == self.table.size[slot] * block:
            # A 1-d tensor read on its own first (a bias) that a layer reads in blocks (a
            # depthwise conv with a channel multiplier): re-read it in those blocks.
            try:
                self.coarsen(old[0], block)
                old = self.bindings[(name, dim)]
            except NotUnderstood:
                pass
        if old[1] == block and self.table.size[old[0]] == self.table.size[slot]:
            self.table.union(old[0], slot)
        else:  # a shared tensor read two incompatible ways: keep it whole
            self.table.fix(old[0])
            self.table.fix(slot)

    def output_slot(self, name: str, dim: int, size: int, label: str) -> int:
        """The slot already bound to (name, dim) when a module is called again, else a new
        one (the caller's binding then ties it to a provisional slot of a 1-d tensor)."""
        old = self.bindings.get((name, dim))
        if old is not None and old[1] == 1 and not self.table.is_provisional(old[0]):
            return old[0]
        return self.fresh(size, label)

    def consume(self, call: Call, arg: Any, value: torch.Tensor, dim: int) -> tuple[int, int]:
        """(slot, block) of the channels a layer reads along ``dim`` of ``value``."""
        info = self.info(arg)
        if isinstance(info, Tracked):
            if info.dim == dim:
                return info.slot, info.block
            why = f"it reads dimension {dim} while the channels are on dimension {info.dim}"
            self.warn(call, self.table.fix(info.slot), why)
        label = f"{call.node.target}:in" if call.node.op == "call_module" else call.node.name
        return self.fresh(int(value.shape[dim]), label, fixed=True), 1

    def coarsen(self, slot: int, factor: int) -> int:
        """Re-read a slot of ``n * factor`` channels as ``n`` channels of ``factor`` entries.

        A pixel shuffle turns channel ``c * r² + j`` of its input into a spatial position of
        its output channel ``c``: the producer's ``n * r²`` channels are really ``n`` channels
        of ``r²`` entries. Every record of ``slot`` so far (bindings, layer I/O and costs,
        node infos) is rewritten onto a new slot of ``n`` channels with its block multiplied
        by ``factor``. Only a slot that is one leaf not yet tied to anything else (but the
        provisional slots of 1-d tensors, such as a conv's bias read with ``get_attr``,
        which are re-read with it) can be re-read this way; anything else raises
        `NotUnderstood`.
        """
        table = self.table
        olds = set(table.classes().get(table.find(slot), []))
        alone = all(m == slot or table.provisional[m] for m in olds)
        if table.children[slot] is not None or slot not in olds or not alone:
            raise NotUnderstood("its input channels are already tied to other tensors")
        if table.size[slot] != table.root_size[slot]:  # its producer's other channels would
            # still read this run as single channels (maxvit's chunk(3) of qkv, then heads)
            raise NotUnderstood("its input channels are a slice of a larger tensor")
        if any(getattr(r, "slot", None) in olds for r in self.rewrites):
            raise NotUnderstood("its input channels are reshaped explicitly before it")
        new = table.new(table.size[slot] // factor, table.label[slot], table.is_fixed(slot))

        def moved(channels: Any) -> Any:
            if isinstance(channels, (Tracked, Channels)) and channels.slot in olds:
                return replace(channels, slot=new, block=channels.block * factor)
            return channels

        self.bindings = {
            key: (new, block * factor) if s in olds else (s, block)
            for key, (s, block) in self.bindings.items()
        }
        self.module_io = {
            name: replace(io, inputs=moved(io.inputs), outputs=moved(io.outputs))
            for name, io in self.module_io.items()
        }
        self.functional = [
            replace(f, io=replace(f.io, inputs=moved(f.io.inputs), outputs=moved(f.io.outputs)))
            for f in self.functional
        ]
        self.layers = [
            replace(cost, factors=tuple(moved(c) for c in cost.factors)) for cost in self.layers
        ]
        self.infos = {node: moved(info) for node, info in self.infos.items()}
        return new

    def add_cost(self, node: fx.Node, cost: LayerCost) -> None:
        """Record the MACs of a functional op (a matmul, attention) under its module's name."""
        self.layers.append(cost)
        self.layer_names.append(owner_module(node) or node.name)

    def fix_info(self, info: Any) -> list[str]:
        """Fix every group an info (or nested tuple of infos) refers to."""
        if isinstance(info, Tracked):
            return self.table.fix(info.slot)
        if isinstance(info, dict):
            info = list(info.values())
        if isinstance(info, (tuple, list)):
            return [name for item in info for name in self.fix_info(item)]
        return []

    def warn(self, call: Call, newly_fixed: list[str], why: str) -> None:
        if newly_fixed:
            logger.log(
                logging.DEBUG if self.quiet else logging.WARNING,
                "node '%s' (%s): %s; fixing channel group(s) %s, which will not be cut",
                call.node.name,
                describe(call.node, self.gm),
                why,
                ", ".join(sorted(set(newly_fixed))),
            )

    def unknown(self, call: Call, why: str) -> Any:
        """Treat a node as opaque: fix what touches it; its outputs are untracked."""
        touched: list[Any] = []
        map_aggregate((call.node.args, call.node.kwargs), lambda a: touched.append(self.info(a)))
        newly = [name for info in touched for name in self.fix_info(info)]
        self.warn(call, newly, why)
        return untracked_like(call.result)

    # -- per-node dispatch -----------------------------------------------------------
    def visit(self, node: fx.Node, args: tuple, kwargs: dict, result: Any) -> None:
        from anywidth.graph._rules import rule_for  # the rules import this module

        call = Call(node, args, kwargs, result)
        if node.op == "placeholder":
            info = self._placeholder(call)
        elif node.op == "get_attr":
            info = self._get_attr(call)
        elif node.op == "output":
            self.fix_info(self.info_tree(node.args[0]))
            map_aggregate(result, self._record_output_shape)
            info = None
        else:
            rule, why = rule_for(node, self.gm)
            try:
                info = rule(self, call) if rule is not None else self.unknown(call, why)
            except NotUnderstood as exc:
                info = self.unknown(call, str(exc))
        self.infos[node] = info

    def info_tree(self, arg: Any) -> Any:
        return map_aggregate(arg, lambda a: self.info(a))

    def _record_output_shape(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            self.output_shapes.append(tuple(value.shape))
        return value

    def _placeholder(self, call: Call) -> Any:
        value = call.result
        if not isinstance(value, torch.Tensor):
            return None
        if value.dim() < 2 or not (value.is_floating_point() or value.is_complex()):
            return UNTRACKED  # token ids and masks carry no channels
        return Tracked(1, self.fresh(int(value.shape[1]), f"input:{call.node.target}", True))

    def _get_attr(self, call: Call) -> Any:
        value, name = call.result, call.node.target
        if not isinstance(value, torch.Tensor):
            return None
        if name not in self.tensor_names or value.dim() == 0:
            return UNTRACKED
        if value.dim() >= 2 or self.params_by_ref:
            return ParamRef(name)
        if value.shape[0] == 1:
            return UNTRACKED
        old = self.bindings.get((name, 0))
        if old is not None and old[1] == 1:
            return Tracked(0, old[0])
        slot = self.table.new(int(value.shape[0]), name, provisional=True)
        self.bind(name, 0, slot)
        return Tracked(0, slot)


def tensor_names(module: nn.Module) -> set[str]:
    """Qualified names of every parameter and buffer of ``module``, shared ones included."""
    names = {n for n, _ in module.named_parameters(remove_duplicate=False)}
    return names | {n for n, _ in module.named_buffers(remove_duplicate=False)}


def untracked_like(result: Any) -> Any:
    if isinstance(result, torch.Tensor):
        return UNTRACKED
    if isinstance(result, (tuple, list)):
        return tuple(untracked_like(r) for r in result)
    return None


def owner_module(node: fx.Node) -> str:
    """The qualified name of the innermost module whose forward made ``node`` ('' if unknown:
    torch.export records it, symbolic tracing does not)."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return path if isinstance(path, str) else ""


def describe(node: fx.Node, gm: fx.GraphModule) -> str:
    """A short human description of what a node calls."""
    if node.op == "call_module":
        return f"{type(gm.get_submodule(node.target)).__name__} module '{node.target}'"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        mod = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", repr(node.target))
        return f"{mod}.{name}" if mod else name
    return node.op


class _Propagator(ShapeProp):
    """Shape propagation that also hands every node to the analyzer."""

    def __init__(self, gm: fx.GraphModule, analyzer: Analyzer) -> None:
        super().__init__(gm)
        self.analyzer = analyzer

    def run_node(self, n: fx.Node) -> Any:
        try:
            result = fx.Interpreter.run_node(self, n)
        except Exception as exc:
            raise GraphError(
                f"running the traced model on example_input failed at node '{n.name}' "
                f"({describe(n, self.module)}): {exc}. Check that example_input has the "
                "shape the model expects."
            ) from exc
        found = []

        def meta(obj: Any) -> Any:
            if isinstance(obj, torch.Tensor):
                found.append(obj)
                return _extract_tensor_metadata(obj)
            return obj

        tensor_meta = map_aggregate(result, meta)
        if found:
            n.meta["tensor_meta"] = tensor_meta
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        self.analyzer.visit(n, args, kwargs, result)
        return result


def analyze(model: nn.Module, example_input: torch.Tensor | tuple, quiet: bool = False) -> Analyzer:
    """Trace ``model`` and follow its channels on ``example_input`` (in eval mode).

    With ``quiet``, groups fixed by unknown ops are logged at debug level only (for callers
    that pass groups computed earlier, whose warnings were already shown).
    """
    gm = trace(model, example_input)
    inputs = tuple(
        t.clone() if isinstance(t, torch.Tensor) else t for t in as_inputs(example_input)
    )
    analyzer = Analyzer(gm, quiet=quiet, params_by_ref=is_exported(gm))
    # The trace registers tensors made in forward as buffers of the graph module
    # (`_tensor_constant0`): constants, not tensors of the model that a cut may slice.
    analyzer.tensor_names = tensor_names(model)
    with torch.no_grad(), eval_mode(gm):
        _Propagator(gm, analyzer).run(*inputs)
    return analyzer
