from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    # The zoo tests run many small forwards; on a shared 2-core machine two intra-op threads
    # wait on each other far longer than one thread computes, so run them single-threaded.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
