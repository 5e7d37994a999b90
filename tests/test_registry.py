"""One registry, resolved lazily: importing a subpackage imports only what it needs, and a
checkpoint of every record kind reloads in a process that imported nothing but `load_model`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import anywidth
from anywidth.graph import channel_groups, cut, keep_first
from anywidth.integral import IntegralConfig, save_integral, to_integral
from anywidth.lowrank import apply_ranks
from anywidth.record import add_step_
from anywidth.registry import (
    STEP_REPLAYERS,
    STRUCTURE_HOOKS,
    register_step_replayer,
    resolve,
    step_replayer,
)
from anywidth.search.search import replay_skip
from anywidth.train import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]

# What `anywidth.graph` stands on, besides its own modules: nothing of train, models,
# integral, pruning, lowrank, search, slim, compression, data or the CLI.
GRAPH_DEPENDENCIES = {
    "anywidth",
    "anywidth._config",
    "anywidth.latency",  # measure times models too
    "anywidth.measure",
    "anywidth.metrics",
    "anywidth.record",
    "anywidth.registry",
}


def _run(code: str) -> str:
    """The standard output of ``code`` run by a fresh interpreter on this source tree."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _modules_after(statement: str) -> set[str]:
    out = _run(
        f"{statement}\nimport sys\n"
        "print(' '.join(m for m in sys.modules if m == 'anywidth' or m.startswith('anywidth.')))"
    )
    return set(out.split())


def test_importing_the_graph_loads_only_its_dependencies():
    loaded = _modules_after("import anywidth.graph")
    outside = {m for m in loaded if not m.startswith("anywidth.graph")}
    assert "anywidth.graph" in loaded
    assert outside <= GRAPH_DEPENDENCIES, sorted(outside - GRAPH_DEPENDENCIES)


def test_importing_anywidth_loads_nothing_else():
    assert _modules_after("import anywidth") == {"anywidth"}


def test_top_level_names_resolve_on_first_use():
    from anywidth.compression import compress
    from anywidth.models import create_model

    assert anywidth.compress is compress and anywidth.create_model is create_model
    assert anywidth.__version__ and "Budget" in dir(anywidth)
    with pytest.raises(AttributeError, match="no attribute 'prune'"):
        anywidth.prune  # noqa: B018


def test_compress_names_every_method_without_importing_them_first():
    out = _run("from anywidth.compression import handled_configs; print(handled_configs())")
    assert out.strip() == "['Auto', 'LowRankConfig', 'PruneConfig', 'SearchConfig', 'ShrinkConfig']"


def test_every_built_in_entry_names_a_function():
    for entry in [*STRUCTURE_HOOKS.values(), *STEP_REPLAYERS.values()]:
        assert callable(resolve(entry)), entry


def test_registry_errors_name_the_entry():
    with pytest.raises(ValueError, match="'anywidth.record': write a function as"):
        resolve("anywidth.record")
    with pytest.raises(KeyError, match="'fold'.*known: \\['cut', 'decompose', 'integral', 'skip'"):
        step_replayer("fold")
    register_step_replayer("cut", "anywidth.graph.cut:replay_cut")  # the same function: fine
    with pytest.raises(ValueError, match="kind 'cut' is already registered"):
        register_step_replayer("cut", lambda model, step: model)


def _saved_models(folder: Path) -> dict[str, tuple[Path, torch.nn.Module]]:
    """One checkpoint per record kind: cut, cut + decompose, cut + skip, legacy widths, INN."""
    torch.manual_seed(0)
    kwargs = {"num_classes": 10, "in_channels": 1}
    model = anywidth.create_model("tiny_resnet", **kwargs).eval()
    x = torch.randn(1, 1, 8, 8)
    groups = channel_groups(model, x)
    sizes = {g.name: g.size // 2 for g in groups if not g.fixed}
    small = cut(model, x, keep_first(groups, sizes))
    factored = apply_ranks(small, {"fc": (1, 2)})
    skipped = replay_skip(cut(model, x, keep_first(groups, sizes)), {"blocks": ["block1"]})
    add_step_(skipped, skipped, {"kind": "skip", "blocks": ["block1"]})
    inn = to_integral(model, x, IntegralConfig(reorder=False), model_name="tiny_resnet",
                      model_kwargs=kwargs)  # fmt: skip
    legacy = {"sizes": sizes, "input_shape": [1, 1, 8, 8]}  # anywidth 0.1 wrote one cut so
    return {
        "cut": (save_checkpoint(folder / "cut.safetensors", small), small),
        "decompose": (save_checkpoint(folder / "lowrank.safetensors", factored), factored),
        "skip": (save_checkpoint(folder / "skip.safetensors", skipped), skipped),
        "widths": (
            save_checkpoint(
                folder / "old.safetensors",
                small,
                model_name="tiny_resnet",
                model_kwargs=kwargs,
                extra={"widths": legacy},
            ),
            small,
        ),  # fmt: skip
        "integral": (save_integral(inn, folder / "inn.safetensors"), inn),
    }


def test_every_record_kind_reloads_without_importing_its_package(tmp_path):
    saved = _saved_models(tmp_path)
    x = torch.randn(2, 1, 8, 8)
    torch.save(x, tmp_path / "x.pt")
    paths = {kind: str(path) for kind, (path, _) in saved.items()}
    out = _run(
        "import sys, torch\n"
        "from anywidth.train import load_model\n"
        "first = sorted(m for m in sys.modules if m.startswith('anywidth.'))\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r})\n"
        f"for kind, path in {paths!r}.items():\n"
        "    model, _ = load_model(path)\n"
        "    torch.save(model.eval()(x).detach(), path + '.out')\n"
        "print(' '.join(first))\n"
    )
    imported_first = set(out.split())
    assert "anywidth.train" in imported_first
    for package in ("lowrank", "search", "integral", "pruning", "slim"):
        assert f"anywidth.{package}" not in imported_first
    for kind, (path, model) in saved.items():
        got = torch.load(f"{path}.out")
        torch.testing.assert_close(got, model.eval()(x).detach(), msg=kind)
