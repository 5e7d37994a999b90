"""Docstring examples run as doctests: every runnable one here, the others named as such.

`RUNNABLE` lists the modules (every example in them) and single docstrings (a function's
qualified name) whose examples run as they stand and print what they show. The rest are
illustrations that need a trained model, a dataset or a Hugging Face encoder (``model``,
``x``, ``loaders``...); they are listed by module in `ILLUSTRATIVE`, and a docstring
example in neither list fails `test_every_docstring_example_is_run_or_named_illustrative`,
so a new example is either runnable or marked as an illustration on purpose. This runs in
CI with the rest of ``tests/`` (``make test``).
"""

from __future__ import annotations

import copy
import doctest
import importlib
import pkgutil
import warnings

import pytest

import anywidth

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

RUNNABLE = [
    "anywidth._config",
    "anywidth._latency_budget",
    "anywidth.analysis.channels",
    "anywidth.budget",
    "anywidth.compare.auto.Auto",
    "anywidth.compare.methods",
    "anywidth.compare.run.CompareConfig",
    "anywidth.compression",
    "anywidth.compression.api",
    "anywidth.compression.checks",
    "anywidth.compression.report",
    "anywidth.compression.scoring",
    "anywidth.data",
    "anywidth.data._dataset",
    "anywidth.data.digits",
    "anywidth.data.fashion_mnist",
    "anywidth.data.superres",
    "anywidth.data.synthetic",
    "anywidth.graph.budget.check_target",
    "anywidth.integral.grid",
    "anywidth.integral.interpolation",
    "anywidth.integral.ordering",
    "anywidth.integral.partition",
    "anywidth.integral.quadrature",
    "anywidth.measure.count_params",
    "anywidth.metrics",
    "anywidth.models._common",
    "anywidth.models._registry",
    "anywidth.models.external",
    "anywidth.models.mobilenetv2",
    "anywidth.models.resnet_cifar",
    "anywidth.models.rexnet",
    "anywidth.models.tiny",
    "anywidth.models.vgg",
    "anywidth.search.distill.distillation_loss",
    "anywidth.search.ops",
    "anywidth.train.config",
    "anywidth.train.distributed.Processes",
    "anywidth.train.loop.cycle",
    "anywidth.train.loop.run_steps_",
    "anywidth.train.losses",
    "anywidth.train.steps",
    "anywidth.train.task",
    "anywidth.train.tune",
]

# Examples that show a call on a user's trained model or data; read, not run.
ILLUSTRATIVE = [
    "anywidth.analysis.ranks",
    "anywidth.compare",  # runs every method on a trained checkpoint
    "anywidth.compression.pipeline",
    "anywidth.data.cifar10",  # downloads nothing: needs the files on disk
    "anywidth.graph",
    "anywidth.integral",
    "anywidth.latency",  # times models: no fixed output
    "anywidth.latency_table",
    "anywidth.lowrank",
    "anywidth.measure",
    "anywidth.models.hf",  # needs the optional transformers extra
    "anywidth.pruning",
    "anywidth.record",
    "anywidth.registry",  # registers a function for good: not run beside the registry's tests
    "anywidth.search",
    "anywidth.slim",
    "anywidth.train.checkpoint",
    "anywidth.train.distributed",
    "anywidth.train.loop",
    "anywidth.train.recalibrate",
    "anywidth.train.width",
    "anywidth.width",
]


def _docstring_tests() -> list[tuple[str, doctest.DocTest]]:
    """``(module name, docstring test)`` of every docstring with examples in the package."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for info in pkgutil.walk_packages(anywidth.__path__, "anywidth."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue  # the CLI documents commands, not calls
        module = importlib.import_module(info.name)
        found += [(info.name, t) for t in finder.find(module, info.name) if t.examples]
    return found


TESTS = _docstring_tests()


def _runnable(name: str) -> list[doctest.DocTest]:
    """The docstring tests of a module (all of them) or of one object."""
    return [t for module, t in TESTS if name in (module, t.name)]


def _illustrative(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in ILLUSTRATIVE)


@pytest.mark.parametrize("name", RUNNABLE)
def test_docstring_examples_run(name):
    tests = _runnable(name)
    assert tests, f"{name} has no docstring examples (any more?): drop it from RUNNABLE"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # warn_non_finite's own example
        for test in tests:  # on a copy: running a DocTest clears its globals
            fresh = copy.copy(test)
            fresh.globs = dict(test.globs)
            runner.run(fresh)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_every_docstring_example_is_run_or_named_illustrative():
    stray = [
        t.name
        for module, t in TESTS
        if module not in RUNNABLE and t.name not in RUNNABLE and not _illustrative(module)
    ]
    assert stray == []
    assert len(TESTS) > 100  # the walk found the package's examples
