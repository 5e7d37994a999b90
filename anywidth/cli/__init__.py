"""anywidth.cli

Importing this package sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy: it is
read once, when torch loads its OpenMP runtime, so it must come before ``import torch``
(``import anywidth`` does not import torch). OpenMP workers otherwise spin at every barrier;
on a machine whose cores other processes hold, a spinning worker waits for a sibling that
has no core. Measured on 2 busy cores (load 2-3, resnet18 224x224 batch 1): 2 threads took
232-490 ms a pass with the default policy, 54-95 ms with PASSIVE, 48-130 ms with 1 thread
(benchmarks/results/latency_threads.md).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
