import pytest
import torch


@pytest.fixture
def one_thread():
    """Conversion tests run many small models: one intra-op thread is faster on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
