"""The docstring examples of anywidth.compression and anywidth.budget run and print what
they show."""

from __future__ import annotations

import doctest
import warnings

import pytest

import anywidth.compression
from anywidth import budget
from anywidth.compression import api, checks, report

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize(
    "module", [anywidth.compression, api, budget, checks, report], ids=lambda m: m.__name__
)
def test_docstring_examples_run(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # warn_non_finite's own example
        result = doctest.testmod(module, optionflags=FLAGS)
    assert result.attempted > 0 and result.failed == 0
