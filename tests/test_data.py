from __future__ import annotations

import numpy as np
import pytest
import torch

from robust_attn.data import get_dataset_cfg, list_datasets, load_dataset
from robust_attn.errors import UserError
from robust_attn.train import augment_batch


def test_registry_names():
    assert {"cifar10", "cifar100", "fashion-mnist", "cifar10-subset", "cifar10-embedded", "fashion-mnist-embedded",
            "synthetic"} <= set(list_datasets())
    with pytest.raises(UserError, match="did you mean 'cifar10'"):
        get_dataset_cfg("cifar01")


def test_embedded_cifar_is_the_first_932_official_test_images():
    test = load_dataset("cifar10-embedded").test
    assert test.x.shape == (932, 3, 32, 32) and test.x.dtype == torch.uint8
    # the first official CIFAR-10 test labels: cat, ship, ship, airplane, frog, frog, automobile, frog, cat, automobile
    assert test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    x, _ = test.float_batch(slice(0, 4))
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1


def test_embedded_cifar_matches_the_shared_subset(dev_data):
    arrays = np.load(dev_data("cifar10-subset") / "cifar10_subset.npz")
    test = load_dataset("cifar10-embedded").test
    assert np.array_equal(test.x.permute(0, 2, 3, 1).numpy(), arrays["test_x"])
    assert np.array_equal(test.y.numpy(), arrays["test_y"])


def test_subset_loads_real_images(dev_data):
    splits = load_dataset("cifar10-subset", dev_data("cifar10-subset"))
    assert splits.train.x.shape == (4660, 3, 32, 32) and splits.test.x.shape == (932, 3, 32, 32)


def test_fashion_mnist_is_padded_to_32_and_embedded_matches(dev_data):
    splits = load_dataset("fashion-mnist", dev_data("fashion-mnist"))
    assert splits.train.x.shape == (60000, 1, 32, 32) and splits.test.x.shape == (10000, 1, 32, 32)
    assert int(splits.test.x[:, :, :2].max()) == 0  # zero padding
    embedded = load_dataset("fashion-mnist-embedded").test
    assert torch.equal(embedded.x, splits.test.x[:1000]) and torch.equal(embedded.y, splits.test.y[:1000])


def test_missing_and_malformed_data(tmp_path):
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset("cifar10-subset")
    with pytest.raises(UserError, match="does not exist"):
        load_dataset("cifar10-subset", tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", train_x=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(UserError, match="lacks arrays"):
        load_dataset("cifar10-subset", tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read"):
        load_dataset("cifar10-subset", tmp_path / "junk.npz")
    x = np.zeros((4, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "labels.npz", train_x=x, train_y=np.array([0, 1, 2, 10]), test_x=x, test_y=np.zeros(4, np.int64))
    with pytest.raises(UserError, match="labels must lie"):
        load_dataset("cifar10-subset", tmp_path / "labels.npz")
    with pytest.raises(UserError, match="neither"):
        load_dataset("fashion-mnist", tmp_path)


def test_augment_batch_crops_and_flips_each_image():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.uint8).view(2, 1, 8, 8)
    out = augment_batch(x, g, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(2):
        crops = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(2)) for c in crops)
    assert torch.equal(augment_batch(x, torch.Generator().manual_seed(0), pad=2), out)  # seeded


@pytest.mark.parametrize("name,folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_a_missing_torchvision_dataset_says_where_it_looked_and_what_to_do(tmp_path, name, folder):
    """Not torchvision's "use download=True" (no command has that) nor `sweep --download` (sweep has no such
    option): where the files were looked for, `train ... --download`, or --data-dir at an existing copy."""
    with pytest.raises(UserError) as missing:
        load_dataset(name, tmp_path)
    with pytest.raises(UserError, match="needs --data-dir"):
        load_dataset(name)
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "data_batch_1").write_bytes(b"truncated")
    with pytest.raises(UserError) as corrupt:
        load_dataset(name, tmp_path)
    for info in (missing, corrupt):
        message = str(info.value)
        assert str(tmp_path / folder) in message and "\n" not in message
        assert f"`robust-attn train ... --dataset {name} --data-dir {tmp_path} --download`" in message
        assert "point --data-dir at a folder that holds an existing copy" in message
        assert "download=True" not in message and "pass --download" not in message
    assert "does not exist" in str(missing.value) and "incomplete or corrupt" in str(corrupt.value)


def test_a_failed_download_says_so(tmp_path, monkeypatch):
    import urllib.error

    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", type("CIFAR10", (), {"base_folder": "cifar-10-batches-py",
                                                                              "__init__": offline}))
    with pytest.raises(UserError, match=r"could not download cifar10 into .*name resolution.*internet") as info:
        load_dataset("cifar10", tmp_path, download=True)
    assert "download=True" not in str(info.value)


def test_incomplete_fashion_mnist_files_and_missing_cifar_for_make_subset(tmp_path):
    from robust_attn.data import make_subset

    (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
    with pytest.raises(UserError, match="incomplete; `robust-attn train ... --dataset fashion-mnist") as info:
        load_dataset("fashion-mnist", tmp_path)
    assert "download=True" not in str(info.value)
    with pytest.raises(UserError, match="cifar-10-batches-py/.*--download` fetches it") as info:
        make_subset(tmp_path, tmp_path / "o.npz")
    assert "download=True" not in str(info.value) and not (tmp_path / "o.npz").exists()
