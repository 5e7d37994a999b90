# Two entry points for a fresh machine: `make demo` runs the main job, `make test` the tests.
# Each creates .venv on first use. torch==2.13.0 (CPU build, on this machine's disk) is
# installed before anything else so that pip never resolves a multi-GB CUDA build.
# `make test` runs every property test on a fixed, derandomized set of examples; `make fuzz`
# runs them on FUZZ_EXAMPLES (default 500) random examples each, failures kept in .hypothesis/.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test fuzz lint bench data clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	# the torchvision built for torch 2.13 (its CUDA-linked operators are not needed: see
	# anywidth/models/_torchvision_ops.py), so the models extra cannot pull another torch
	$(PY) -m pip install --quiet torchvision==0.28.0
	$(PY) -m pip install --quiet -e ".[dev,onnx,bench,nlp,models]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/anywidth demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

PROPERTY_TESTS := tests/graph/test_property.py \
	tests/graph/test_dynamic.py::test_random_architectures \
	tests/integral/test_quadrature.py::test_any_partition_integrates_what_it_should \
	tests/integral/test_partition.py::test_any_delta_gives_a_valid_partition \
	tests/integral/test_width_paths.py::test_tuning_at_any_tiny_plan_keeps_everything_finite

# The tuning property runs a second time on oneDNN's AVX2 kernels, where a wrong weight layout
# corrupted the heap (docs/known_issues.md); ONEDNN_MAX_CPU_ISA selects them on any x86 CPU.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest --hypothesis-show-statistics $(PROPERTY_TESTS)
	HYPOTHESIS_PROFILE=fuzz ONEDNN_MAX_CPU_ISA=AVX2 $(PY) -m pytest \
		tests/integral/test_width_paths.py::test_tuning_at_any_tiny_plan_keeps_everything_finite

# Fashion-MNIST for the benchmarks (benchmarks/any_width.py): Debian's dataset package puts
# the original idx files in /usr/share/datasets/fashion-mnist. Not needed by `make test`.
data:
	test -d /usr/share/datasets/fashion-mnist || \
		(apt-get update && apt-get install -y dataset-fashion-mnist)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
