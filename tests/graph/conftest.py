import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The graph tests run many tiny models: one intra-op thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
