import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The training tests run models of a few thousand parameters, where a second intra-op
    thread only adds synchronisation (10x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
