import numpy as np
import pytest
import torch

from anywidth.data import list_datasets, load_dataset, make_loaders, stratified_split
from anywidth.data.digits import SPLIT_FRACTIONS, load_digits
from anywidth.data.synthetic import load_synthetic


def _labels() -> np.ndarray:
    from sklearn.datasets import load_digits as sklearn_digits

    return sklearn_digits().target


@pytest.mark.parametrize("seed", [0, 7])
def test_digits_split_is_a_stratified_partition(seed):
    labels = _labels()
    parts = stratified_split(labels, list(SPLIT_FRACTIONS.values()), seed)
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) == 1797
    assert len(np.unique(joined)) == len(labels)  # disjoint and covering
    for part, fraction in zip(parts, SPLIT_FRACTIONS.values(), strict=True):
        for digit in range(10):
            expected = fraction * np.sum(labels == digit)
            assert abs(np.sum(labels[part] == digit) - expected) <= 1.0


def test_digits_splits_sizes_match_the_partition():
    data = load_digits(seed=3)
    parts = stratified_split(_labels(), list(SPLIT_FRACTIONS.values()), 3)
    assert [len(data[s]) for s in SPLIT_FRACTIONS] == [len(p) for p in parts]
    for split, part in zip(SPLIT_FRACTIONS, parts, strict=True):
        assert torch.equal(data[split].labels, torch.from_numpy(_labels()[part]))


def test_digits_is_deterministic_and_seed_dependent():
    a, b, c = (load_digits(seed=s, splits=["val"])["val"] for s in (1, 1, 2))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)


def test_digits_shapes_and_train_normalisation():
    train = load_dataset("digits", "train")
    image, label = train[5]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and 0 <= int(label) < 10
    stacked = torch.stack([train[i][0] for i in range(len(train))])
    assert abs(stacked.mean().item()) < 1e-4
    assert abs(stacked.std().item() - 1.0) < 1e-3
    assert (train.num_classes, train.in_channels, train.output_size) == (10, 1, 8)


def test_digits_resize():
    plain = load_dataset("digits", "test")
    large = load_dataset("digits", "test", image_size=32)
    same = load_dataset("digits", "test", image_size=8)
    assert large[0][0].shape == (1, 32, 32) and large.output_size == 32
    assert torch.equal(same[0][0], plain[0][0])
    # Bilinear upsampling keeps the overall brightness of the image.
    assert abs(large[0][0].mean().item() - plain[0][0].mean().item()) < 0.1


def test_make_loaders_digits():
    loaders = make_loaders("digits", batch_size=64, seed=0)
    images, labels = next(iter(loaders.train))
    assert images.shape == (64, 1, 8, 8) and labels.shape == (64,)
    assert (loaders.num_classes, loaders.in_channels, loaders.image_size) == (10, 1, 8)
    assert loaders.name == "digits"
    again = make_loaders("digits", batch_size=64, seed=0)
    assert torch.equal(next(iter(again.train))[1], labels)  # same seed, same shuffle
    first, second = (torch.cat([y for _, y in loaders.test]) for _ in range(2))
    assert torch.equal(first, second)
    assert torch.equal(first, loaders.test.dataset.labels)  # eval loaders keep order


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*cifar10.*digits.*synthetic"):
        make_loaders("mnist")
    assert list_datasets() == ["cifar10", "digits", "fashion-mnist", "sr-skimage", "synthetic"]


def test_unknown_option_and_split_are_refused():
    with pytest.raises(ValueError, match="no option.*'limit'"):
        load_dataset("digits", "train", limit=10)
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("digits", "holdout")


def test_synthetic_is_deterministic():
    kwargs = {"num_samples": 16, "image_shape": (2, 5, 7), "num_classes": 3}
    a = load_synthetic(seed=4, **kwargs)
    b = load_synthetic(seed=4, **kwargs)
    c = load_synthetic(seed=5, **kwargs)
    for split in ("train", "val", "test"):
        assert torch.equal(a[split].images, b[split].images)
        assert torch.equal(a[split].labels, b[split].labels)
    assert not torch.equal(a["train"].images, c["train"].images)
    assert not torch.equal(a["train"].images[:4], a["val"].images)  # splits differ
    assert a["train"].images.shape == (16, 2, 5, 7) and len(a["val"]) == 4
    assert int(a["train"].labels.max()) < 3


def test_synthetic_loaders():
    loaders = make_loaders(
        "synthetic", batch_size=8, num_samples=32, image_shape=(3, 16, 16), image_size=8
    )
    images, _ = next(iter(loaders.train))
    assert images.shape == (8, 3, 8, 8)
    assert (loaders.in_channels, loaders.image_size, loaders.num_classes) == (3, 8, 10)
    assert torch.isfinite(images).all()
