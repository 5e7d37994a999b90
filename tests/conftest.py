import os

import pytest
import torch
from hypothesis import settings

from tests._hypothesis import PROFILE

# Two cores on CI: keep torch from oversubscribing them, and keep output free of bars.
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("ANYWIDTH_PROGRESS", "0")
settings.load_profile(PROFILE)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
