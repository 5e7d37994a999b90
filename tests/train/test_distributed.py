"""Training in 2 processes (gloo, CPU) against 1 process: same batches, same result.

A 2-process run with per-process batch b must equal a 1-process run with batch 2b. The
only difference allowed is float rounding: DDP averages two half-batch gradients where one
process takes the mean over the whole batch. Measured on these runs: at most 1.2e-7 in the
weights (INN; 1.5e-8 plain); the stated tolerance is 1e-5 (absolute) + 1e-4 (relative).
"""

import shutil
import time

import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from anywidth.data import Loaders, load_dataset
from anywidth.integral import IntegralConfig, to_integral
from anywidth.integral.training import train_integral_
from anywidth.integral.tuning import TuneConfig, tune_partition
from anywidth.models import create_model
from anywidth.search import SearchConfig, search_shape
from anywidth.slim import to_slimmable
from anywidth.train import TrainConfig, train_
from anywidth.train.distributed import (
    DistributedError,
    Processes,
    init_distributed,
    processes,
    resolve_device,
    set_epoch,
    shard_train_loader,
)
from anywidth.train.tune import tune_
from anywidth.train.width import WidthTrainConfig, train_width_random_
from tests.train._processes import DDP_MODEL, run_processes
from tests.train._tiny import MODEL_NAME as BN_MODEL

ATOL, RTOL = 1e-5, 1e-4
GLOBAL_BATCH = 64
PLAIN = TrainConfig(epochs=2, lr=0.05, seed=0)
WIDTH = WidthTrainConfig(min_ratio=0.5, random_plans=1, sampling="per-group",
                         recalibrate_batches=2)  # fmt: skip


def _loaders(batch: int = GLOBAL_BATCH) -> Loaders:
    train = Subset(load_dataset("digits", "train"), range(256))  # 4 batches of 64
    val = Subset(load_dataset("digits", "val"), range(180))
    shuffled = DataLoader(train, batch_size=batch, shuffle=True, generator=torch.Generator())
    fixed = DataLoader(val, batch_size=batch)
    return Loaders(shuffled, fixed, fixed, num_classes=10, in_channels=1, image_size=8,
                   name="digits")  # fmt: skip


def _model(name: str = DDP_MODEL):
    torch.manual_seed(0)
    return create_model(name, num_classes=10, in_channels=1)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _plain(checkpoint_dir, keep_epoch_1=None):
    model = _model()

    def keep(epoch, _):
        if epoch == 1 and keep_epoch_1 is not None and processes().is_main:
            shutil.copytree(checkpoint_dir, keep_epoch_1)

    result = train_(model, _loaders(), PLAIN, checkpoint_dir=checkpoint_dir, on_epoch_end=keep)
    return _state(model), result.history


def _width(model_name: str = DDP_MODEL, method: str = "slice"):
    """Slimmable (``"slice"``) or INN (``"integral"``) width-random training."""
    x = torch.randn(1, 1, 8, 8)
    if method == "slice":
        wide = to_slimmable(_model(model_name), x)
        result = train_width_random_(wide, _loaders(), PLAIN, WIDTH)
    else:
        wide = to_integral(_model(model_name), x, IntegralConfig(reorder=False))
        result = train_integral_(wide, _loaders(), PLAIN, WIDTH)
    return _state(wide), result.history


def _tuned():
    """`tune_` (the loop of partition tuning) on all parameters of a BN-free model."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    images = torch.stack([x.flatten() for x, _ in _loaders().train.dataset])  # (256, 64)
    labels = torch.tensor([int(y) for _, y in _loaders().train.dataset])
    data = DataLoader(TensorDataset(images, labels), batch_size=32)
    losses = tune_(model, list(model.parameters()), data, steps=10, lr=0.01)
    return _state(model), losses


def _partition_tuned():
    """INN partition tuning (`tune_partition`, through `tune_`) at half width."""
    inn = to_integral(_model(), torch.randn(1, 1, 8, 8), IntegralConfig(reorder=False))
    tuned = tune_partition(inn, 0.5, _loaders().train, TuneConfig(steps=6, lr=0.01))
    return [p.detach().clone() for p in tuned.grid_parameters()]


def _searched():
    torch.manual_seed(0)
    model = create_model("tiny_convnet", num_classes=10, in_channels=1).eval()
    result = search_shape(model, torch.randn(1, 1, 8, 8), _loaders(32).train,
                          SearchConfig(0.5, epochs=1, seed=4))  # fmt: skip
    return result.plan, result.log


def _two_process_runs(rank: int, out: str) -> dict:
    """Rank ``rank``'s part of every multi-process loop: plain training, width-random
    training (with and without BN), tuning and TAS search."""
    import anywidth.train.distributed as d

    where = d.init_distributed()
    assert where == d.Processes(rank, 2, rank)
    plain = _plain(f"{out}/plain", keep_epoch_1=f"{out}/epoch1")
    width = _width()
    integral = _width(method="integral")
    with_bn = _width(BN_MODEL)
    return {
        "plain": plain,
        "width": width,
        "integral": integral,
        "bn_buffers": {k: v for k, v in with_bn[0].items() if "running" in k},
        "tuned": _tuned(),
        "partition": _partition_tuned(),
        "searched": _searched(),
    }


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    outcomes = run_processes(_two_process_runs, out=str(out))
    for rank, outcome in outcomes.items():
        assert "value" in outcome, f"rank {rank}: {outcome.get('trace') or outcome}"
    return out, {rank: o["value"] for rank, o in outcomes.items()}


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=ATOL, rtol=RTOL, msg=key)


def _assert_history_close(a: list[dict], b: list[dict]) -> None:
    assert [h["epoch"] for h in a] == [h["epoch"] for h in b]
    for x, y in zip(a, b, strict=True):
        for key in ("lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            if key in x:
                assert x[key] == pytest.approx(y[key], rel=RTOL, abs=ATOL), key


def test_two_processes_of_batch_b_equal_one_process_of_batch_2b(two, tmp_path):
    _, runs = two
    state, history = _plain(tmp_path / "one")
    for rank in (0, 1):  # every rank returns the same weights and the same record
        _assert_close(runs[rank]["plain"][0], state)
        _assert_history_close(runs[rank]["plain"][1], history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize(("method", "key"), [("slice", "width"), ("integral", "integral")])
def test_width_random_training_draws_the_same_widths_on_every_rank(two, method, key):
    _, runs = two
    state, history = _width(method=method)
    for rank in (0, 1):
        _assert_close(runs[rank][key][0], state)
        _assert_history_close(runs[rank][key][1], history)
        assert runs[rank][key][1][-1]["val_accuracy_smallest"] == pytest.approx(
            history[-1]["val_accuracy_smallest"], abs=ATOL
        )


def test_batchnorm_statistics_are_the_same_on_every_rank(two):
    _, runs = two
    buffers = runs[0]["bn_buffers"]
    assert buffers and all(torch.equal(v, runs[1]["bn_buffers"][k]) for k, v in buffers.items())


def test_a_two_process_checkpoint_resumes_in_one_process(two, tmp_path):
    out, runs = two
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(out / "epoch1", resumed_dir)
    model = create_model(DDP_MODEL, num_classes=10, in_channels=1)  # any init: resume loads
    result = train_(model, _loaders(), PLAIN, checkpoint_dir=resumed_dir, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2]
    _assert_close(_state(model), runs[0]["plain"][0])  # the uninterrupted 2-process run
    _assert_history_close(result.history, runs[0]["plain"][1])
    assert not (out / "plain" / "last.safetensors.tmp").exists()


def test_tuning_in_two_processes_equals_one(two):
    _, runs = two
    state, losses = _tuned()
    for rank in (0, 1):
        _assert_close(runs[rank]["tuned"][0], state)
        assert runs[rank]["tuned"][1] == pytest.approx(losses, rel=RTOL, abs=ATOL)


def test_partition_tuning_in_two_processes_equals_one(two):
    _, runs = two
    grids = _partition_tuned()
    assert grids
    for rank in (0, 1):
        for got, want in zip(runs[rank]["partition"], grids, strict=True):
            torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)


def test_search_gives_every_rank_the_same_shape(two):
    _, runs = two
    (plan, log), (plan_1, log_1) = runs[0]["searched"], runs[1]["searched"]
    assert plan == plan_1 and log[0]["argmax_macs"] == log_1[0]["argmax_macs"]
    assert log[0]["val_accuracy"] == log_1[0]["val_accuracy"]
    assert 0 < log[0]["argmax_macs"] <= 1


def _stall_or_crash(rank: int, how: str) -> None:
    def loss_fn(model, images, labels):
        if rank == 1 and how == "stall":
            time.sleep(120)  # alive but silent: the others must time out, not wait
        if rank == 1 and how == "crash":
            raise RuntimeError("rank 1 broke down")
        logits = model(images)
        return torch.nn.functional.cross_entropy(logits, labels), logits

    train_(_model(), _loaders(), TrainConfig(epochs=1, lr=0.05), loss_fn=loss_fn)


@pytest.mark.parametrize("how", ["stall", "crash"])
def test_a_failing_rank_ends_the_run_with_a_clear_error(how):
    began = time.perf_counter()
    outcomes = run_processes(_stall_or_crash, how=how, timeout_s=3.0, wait_s=60.0,
                             wait_for=(0,))  # fmt: skip
    assert time.perf_counter() - began < 45
    survivor = outcomes[0]
    assert survivor["error"] == "DistributedError", survivor
    assert "stopped answering while training epoch 1" in survivor["message"]
    assert "ANYWIDTH_DIST_TIMEOUT" in survivor["message"]
    assert survivor["seconds"] < 25
    assert outcomes[1]["message"] == ("rank 1 broke down" if how == "crash" else "no result")


@pytest.mark.parametrize("size", [256, 251], ids=["even", "padded"])
def test_the_shards_of_a_batch_make_up_the_one_process_batch(size):
    def loader():
        data = TensorDataset(torch.arange(size))
        return DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator())

    one = loader()
    shards = [shard_train_loader(loader(), Processes(r, 2, r), seed=3) for r in (0, 1)]
    for epoch in (1, 2):
        one.generator.manual_seed(3 + epoch)  # what train_ does every epoch
        for shard in shards:
            set_epoch(shard, epoch)
        parts = [list(shard) for shard in shards]
        assert len(parts[0]) == len(parts[1]) == len(one)
        for k, (batch,) in enumerate(one):
            joined = torch.cat([parts[0][k][0], parts[1][k][0]])
            # rank r holds every second sample from r; a padded tail repeats the first ones
            assert set(joined.tolist()) >= set(batch.tolist())
            assert len(joined) - len(batch) == (size % 2 if k == len(one) - 1 else 0)


def test_the_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match=r"batch size 63 is the global batch.*divisible by 2"):
        shard_train_loader(_loaders(batch=63).train, Processes(0, 2, 0), seed=0)
    with pytest.raises(ValueError, match="needs a torch DataLoader"):
        shard_train_loader([(torch.zeros(2, 1), torch.zeros(2))], Processes(0, 2, 0), seed=0)


def test_bad_launch_settings_are_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DistributedError, match="start the run with torchrun"):
        init_distributed()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "0")
    with pytest.raises(DistributedError, match="--standalone"):
        init_distributed()
    monkeypatch.setenv("MASTER_PORT", "1")
    if not torch.cuda.is_available():
        with pytest.raises(DistributedError, match="'nccl' needs CUDA"):
            init_distributed(backend="nccl")
    with pytest.raises(DistributedError, match="backend must be one of"):
        init_distributed(backend="mpi")
    with pytest.raises(DistributedError, match="one GPU"):
        resolve_device("cuda:0", Processes(0, 2, 0))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_distributed() == Processes()
