import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread: searches run many small ops, which a second, contended thread slows."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
