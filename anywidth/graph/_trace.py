"""Tracing a model into an fx graph, with errors that name the module that failed.

Two front ends feed the one channel analysis. ``torch.fx.symbolic_trace`` is tried first: it
keeps each layer a module call and its graph runs on any input shape. Models it cannot
trace — Hugging Face transformers write into proxies and branch on tensor values — are
traced with ``torch.export`` instead, whose ATen graph (``aten.linear``,
``aten.layer_norm``, ``aten.scaled_dot_product_attention``...) reads every parameter by its
qualified name; `anywidth.graph._rules_aten` follows those ops. An exported graph is
specialised to the example input's shape (batch size and sequence length are constants),
which is why symbolic tracing stays the first choice. Measured (1 thread): the tiny BERT of
the tests analyses in 0.12 s through torch.fx and 1.8 s through torch.export, with the same
groups; resnet20 in 0.19 s against 3.7 s, and its ATen convolutions have no rule (every
group would be fixed), while symbolic tracing keeps conv layers as modules with their specs.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import operator
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import fx, nn

from anywidth.graph._types import GraphError
from anywidth.measure import eval_mode

__all__ = [
    "trace",
    "export_trace",
    "is_exported",
    "lifted",
    "graph_module",
    "as_inputs",
    "run_once",
    "output_shapes",
    "check_runs",
]

logger = logging.getLogger("anywidth.graph")

_HOW_TO_FIX = (
    "anywidth follows channels through a torch.fx trace, so forward() must be traceable: "
    "make control flow independent of tensor values (no `if x.sum() > 0:`), or move the "
    "untraceable code into a free function decorated with torch.fx.wrap, which anywidth "
    "treats as an opaque op (it fixes the channel groups that touch it)."
)


class _NamingTracer(fx.Tracer):
    """A tracer that remembers the innermost module whose forward raised, keeps layers
    registered as leaves (`anywidth.graph.register_layer`) as single nodes, and iterates
    the pieces of a ``chunk`` or ``split`` whose count is written in the call
    (Ultralytics' ``list(self.cv1(x).chunk(2, 1))``)."""

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _PiecesProxy(node, self)

    def iter(self, obj: fx.Proxy):
        count = _piece_count(obj.node)
        if count is None:
            return super().iter(obj)
        return iter([obj[i] for i in range(count)])

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        from anywidth.graph.layers import is_registered_leaf  # layers import the analysis

        return is_registered_leaf(m) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception as exc:
            if not hasattr(exc, "_anywidth_module"):
                exc._anywidth_module = (self.path_of_module(m), type(m).__name__)
            raise


class _PiecesProxy(fx.Proxy):
    """A proxy whose ``len`` is known when it stands for the pieces of a ``chunk``/``split``
    (``list(proxy)`` asks for it first)."""

    def __len__(self) -> int:
        count = _piece_count(self.node)
        return super().__len__() if count is None else count


def _piece_count(node: fx.Node) -> int | None:
    """How many tensors a ``chunk(n)`` or ``split([sizes])`` node returns, when the call
    says so; None otherwise. A ``chunk`` of fewer channels than pieces returns fewer: the
    shape run after tracing then fails on the missing piece."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if node.op not in ("call_method", "call_function") or name not in ("chunk", "split"):
        return None
    second = (
        node.args[1]
        if len(node.args) > 1
        else node.kwargs.get(
            "chunks" if name == "chunk" else "split_size_or_sections",
            node.kwargs.get("split_size"),
        )
    )
    if name == "chunk" and isinstance(second, int):
        return second
    if name == "split" and isinstance(second, (list, tuple)):
        return len(second)
    return None


def _inputs_only(forward):
    """``forward`` without its ``*args`` / ``**kwargs``, which torch.fx would trace as one
    proxy that the body then unpacks (Ultralytics' ``forward(self, x, *args, **kwargs)``);
    the named parameters keep their names and defaults."""
    signature = inspect.signature(forward)
    kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if not any(p.kind in kinds for p in signature.parameters.values()):
        return forward
    named = [p for p in signature.parameters.values() if p.kind not in kinds]
    if any(p.kind is inspect.Parameter.KEYWORD_ONLY for p in named):
        return forward
    names = [p.name for p in named]
    defaults = tuple(p.default for p in named if p.default is not inspect.Parameter.empty)
    source = f"def forward({', '.join(names)}):\n    return _forward({', '.join(names)})\n"
    namespace: dict[str, Any] = {"_forward": forward}
    exec(source, namespace)  # a plain function: fx reads its code object's argument names
    narrowed = namespace["forward"]
    narrowed.__defaults__ = defaults or None
    return narrowed


def trace(model: nn.Module, example_input: torch.Tensor | tuple | None = None) -> fx.GraphModule:
    """Trace ``model`` (in eval mode) into a GraphModule sharing its modules.

    Symbolic tracing first; when it fails and ``example_input`` is given, `export_trace`.
    The model is traced with every submodule in eval mode, so Python branches on
    ``self.training`` take their inference path; the modules' flags are restored.

    Raises:
        GraphError: neither front end can trace the model; the message names the module.
    """
    try:
        return _symbolic_trace(model)
    except GraphError as fx_error:
        if example_input is None:
            raise
        try:
            gm = export_trace(model, example_input)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise GraphError(f"{fx_error} torch.export failed as well: {reason}") from exc
        logger.info("%s; traced with torch.export instead", str(fx_error).split(". ")[0])
        return gm


LIFTED = "_lifted_constant_"
"""Name prefix of the tensors an exported graph reads that are no tensors of the model."""


def lifted(gm: fx.GraphModule) -> dict[str, torch.Tensor]:
    """The constants `export_trace` gave ``gm`` (for `graph_module` on a copy of the model)."""
    return {
        n.target: getattr(gm, n.target)
        for n in gm.graph.nodes
        if n.op == "get_attr" and n.target.startswith(LIFTED)
    }


# ATen ops that only check metadata at run time: dropped from exported graphs.
_CHECKS = ("_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size")


def export_trace(model: nn.Module, example_input: torch.Tensor | tuple) -> fx.GraphModule:
    """``torch.export`` ``model`` (in eval mode) on ``example_input``: a GraphModule of ATen
    ops that reads the model's own parameters by name and takes positional inputs.

    The graph is specialised to the example input's shape. Guards and metadata asserts are
    dropped; outputs keep the model's structure, with mappings (a transformers
    ``ModelOutput``) as dicts, or come back as a flat tuple for other container types.

    Raises:
        GraphError: the graph holds constants that are not tensors of the model.
    """
    inputs = as_inputs(example_input)
    with eval_mode(model), _attributes_kept(model), warnings.catch_warnings():
        # _attributes_kept puts back what forward assigns; torch's advice does not apply
        warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned")
        program = torch.export.export(model, inputs, strict=False)
    exported = program.module()
    graph = exported.graph
    _inline_autocast_off(graph, exported)
    for node in reversed(list(graph.nodes)):
        checks = node.op == "call_module" or any(c in str(node.target) for c in _CHECKS)
        if checks and not node.users:
            graph.erase_node(node)
    graph._codegen = fx.graph.CodeGen()  # positional inputs
    output = next(n for n in graph.nodes if n.op == "output")
    structured = _plain(pytree.tree_unflatten(list(output.args[0]), program.call_spec.out_spec))
    if structured is not None:  # the model's own output structure, with dicts for mappings
        output.args = (structured,)
    names = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    names |= {n for n, _ in model.named_buffers(remove_duplicate=False)}
    constants = exported
    lifted: dict[str, torch.Tensor] = {}
    for node in graph.nodes:
        if node.op != "get_attr" or node.target in names:
            continue
        try:
            value = _attribute(constants, node.target)
        except AttributeError:
            value = None
        if isinstance(value, torch.Tensor) and value.dim() == 0:  # e.g. x[mask] = -1e4
            node.op, node.target = "call_function", torch.full
            node.args, node.kwargs = ((), value.item()), {"dtype": value.dtype}
        elif isinstance(value, torch.Tensor):  # a tensor attribute that is no buffer
            node.target = f"{LIFTED}{len(lifted)}"  # (Ultralytics' anchors, stride)
            lifted[node.target] = value
        else:
            raise GraphError(
                f"torch.export of {type(model).__name__} read {node.target!r}, which is not a "
                "tensor of the model; register it as a buffer"
            )
    gm = graph_module(model, graph, lifted)
    gm.graph.lint()
    return gm


def _inline_autocast_off(graph: fx.Graph, owner: nn.Module) -> None:
    """Inline the sub-graphs torch.export makes of ``with torch.autocast(..., enabled=False)``
    blocks (efficientvit's attention): they run as written, so the region is plain ops."""
    wrap = getattr(torch.ops.higher_order, "wrap_with_autocast", None)
    for node in list(graph.nodes):
        if wrap is None or node.op != "call_function" or node.target is not wrap:
            continue
        if node.args[2]:  # autocast enabled: inlining would change the numbers
            continue
        holder = node.args[4]
        sub = _attribute(owner, holder.target)
        placeholders = [n for n in sub.graph.nodes if n.op == "placeholder"]
        values = dict(zip(placeholders, node.args[5:], strict=True))
        with graph.inserting_before(node):
            out = graph.graph_copy(sub.graph, values)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for user in list(node.users):
            if user.op != "call_function" or user.target is not operator.getitem:
                raise GraphError(f"torch.export's autocast block {node.name} is used whole")
            user.replace_all_uses_with(outs[user.args[1]])
            graph.erase_node(user)
        graph.erase_node(node)
        if not holder.users:
            graph.erase_node(holder)


@contextlib.contextmanager
def _attributes_kept(model: nn.Module) -> Iterator[None]:
    """Put back the plain attributes of every submodule after the block: a forward that
    caches tensors on its module (Ultralytics' ``Detect.anchors``) would otherwise keep the
    fake tensors of an export."""
    saved = [(m, dict(vars(m))) for m in model.modules()]
    try:
        yield
    finally:
        for module, attributes in saved:
            for name in set(vars(module)) - set(attributes):
                delattr(module, name)
            for name, value in attributes.items():
                if vars(module).get(name) is not value:
                    object.__setattr__(module, name, value)


def _plain(obj: Any) -> Any:
    """``obj`` with mappings (e.g. a transformers ``ModelOutput``) as dicts; None when it
    holds another container type, which a graph's generated code cannot build."""
    if isinstance(obj, fx.Node):
        return obj
    if isinstance(obj, Mapping):
        items = {k: _plain(v) for k, v in obj.items()}
        return None if any(v is None for v in items.values()) else items
    if type(obj) in (tuple, list):
        items = [_plain(v) for v in obj]
        return None if any(v is None for v in items) else type(obj)(items)
    return None


def is_exported(gm: fx.GraphModule) -> bool:
    """Whether ``gm`` holds an ATen graph from `export_trace`."""
    return any(isinstance(n.target, torch._ops.OpOverload) for n in gm.graph.nodes)


def _symbolic_trace(model: nn.Module) -> fx.GraphModule:
    tracer = _NamingTracer()
    forward = type(model).forward
    narrowed = _inputs_only(forward)
    try:
        with eval_mode(model):
            if narrowed is forward:
                graph = tracer.trace(model)
            else:
                graph = _trace_narrowed(tracer, model, narrowed)
    except Exception as exc:
        path, kind = getattr(exc, "_anywidth_module", ("", type(model).__name__))
        where = f"module '{path}' ({kind})" if path else f"the top-level forward ({kind})"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphError(
            f"cannot trace {type(model).__name__}: {where} failed: {reason}. {_HOW_TO_FIX}"
        ) from exc
    for node in graph.nodes:
        # `from __future__ import annotations` leaves annotations as strings, which fx
        # would emit as a global that breaks pickling the GraphModule.
        if isinstance(node.type, str):
            node.type = None
    return graph_module(model, graph)


def _trace_narrowed(tracer: fx.Tracer, model: nn.Module, forward) -> fx.Graph:
    """Trace ``model`` with ``forward`` standing for its class's forward."""
    cls = type(model)
    narrowed_cls = type(cls.__name__, (cls,), {"forward": forward})
    model.__class__ = narrowed_cls  # restored below; fx reads type(root).forward
    try:
        return tracer.trace(model)
    finally:
        model.__class__ = cls


def graph_module(
    root: nn.Module, graph: fx.Graph, constants: Mapping[str, torch.Tensor] | None = None
) -> fx.GraphModule:
    """A GraphModule running ``graph`` on ``root``'s own submodules.

    torch.fx copies only the leaf modules a graph calls and puts plain ``nn.Module``
    objects in between; putting ``root``'s children back keeps containers intact
    (``model.layer1[0]`` still indexes) and keeps the same ``state_dict`` keys.
    ``constants`` are tensors the graph reads that ``root`` does not hold (by the names
    its ``get_attr`` nodes use); they become attributes of the GraphModule alone.
    """
    owner: nn.Module | dict[str, Any] = root
    if constants:
        owner = dict(constants)
        for node in graph.nodes:
            if node.op in ("get_attr", "call_module") and node.target not in owner:
                owner[node.target] = _attribute(root, node.target)
    gm = fx.GraphModule(owner, graph, class_name=type(root).__name__)
    gm.training = root.training
    for name, child in root.named_children():
        if not hasattr(fx.GraphModule, name):
            setattr(gm, name, child)
    return gm


def _attribute(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def as_inputs(example_input: torch.Tensor | tuple) -> tuple:
    """The example input as a tuple of positional arguments."""
    if isinstance(example_input, torch.Tensor):
        return (example_input,)
    if isinstance(example_input, (tuple, list)):
        return tuple(example_input)
    raise GraphError(
        f"example_input must be a tensor or a tuple of tensors, got {type(example_input).__name__}"
    )


def run_once(module: nn.Module, example_input: torch.Tensor | tuple) -> Any:
    """``module`` on a copy of the example input, in eval mode, without gradients."""
    inputs = tuple(
        t.clone() if isinstance(t, torch.Tensor) else t for t in as_inputs(example_input)
    )
    with torch.no_grad(), eval_mode(module):
        return module(*inputs)


def output_shapes(out: Any) -> list[tuple[int, ...]]:
    """The shapes of every tensor in a (nested) output, in order."""
    shapes: list[tuple[int, ...]] = []
    fx.node.map_aggregate(
        out, lambda v: shapes.append(tuple(v.shape)) if isinstance(v, torch.Tensor) else None
    )
    return shapes


def check_runs(
    module: nn.Module, example_input: torch.Tensor | tuple, expected: list, what: str
) -> Any:
    """Run a model anywidth built once: its outputs must have the ``expected`` shapes.

    Returns:
        Its output.

    Raises:
        RuntimeError: an internal error, naming ``what`` was built ("the cut model").
    """
    try:
        out = run_once(module, example_input)
    except Exception as exc:
        raise RuntimeError(f"anywidth internal error: {what} does not run: {exc}") from exc
    shapes = output_shapes(out)
    if shapes != expected:
        raise RuntimeError(
            f"anywidth internal error: {what} changed the output shapes {expected} to {shapes}"
        )
    return out
