"""Datasets by name, as in-memory uint8 tensors that become [0, 1] floats at batch time.

Keeping whole datasets as uint8 tensors lets training augment batches as tensors (random crop
and flip on the whole batch) instead of one PIL image at a time, and lets the sweep slice
exactly the same examples on every run. Normalisation is not applied here: it is a layer of the
model (see :mod:`robust_attn.models.wrapper`), so attacks work in pixel space.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .files import atomic_write_bytes
from .registry import Registry


@dataclass(frozen=True)
class ImageSet:
    """Images ``x`` (N x C x H x W uint8) with labels ``y`` (N int64)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def float_batch(self, index: slice | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] (float32) and labels for ``index``."""
        return self.x[index].float().div_(255.0), self.y[index]


def image_set_sha256(images: ImageSet) -> str:
    """sha256 of the pixels and labels: the identity of a set of evaluation images, whatever its dataset's
    name. A checkpoint records it for the images its clean accuracy was measured on, so a sweep can tell
    whether it evaluates the same images (and compare the accuracies) or others."""
    h = hashlib.sha256()
    h.update(images.x.contiguous().numpy().tobytes())
    h.update(images.y.contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class DatasetCfg:
    name: str
    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    has_train: bool
    description: str
    # The embedded set to evaluate checkpoints of this dataset on: the first images of this dataset's test split
    # (a test checks it where the full split is at hand), so it is the whole split when the counts agree.
    evaluation_set: str | None = None


@dataclass(frozen=True)
class Splits:
    cfg: DatasetCfg
    train: ImageSet | None
    test: ImageSet


_CIFAR10_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
_FASHION_STATS = ((0.2860,), (0.3530,))

Loader = Callable[[Path | None, bool], tuple[ImageSet | None, ImageSet]]
_DATASETS: Registry[DatasetCfg, Loader] = Registry("dataset")


def register_dataset(cfg: DatasetCfg) -> Callable[[Loader], Loader]:
    """Register ``loader(data_dir, download) -> (train | None, test)`` under ``cfg.name``."""
    return _DATASETS.register(cfg.name, cfg)


def list_datasets(pattern: str = "*") -> list[str]:
    return _DATASETS.names(pattern)


def get_dataset_cfg(name: str) -> DatasetCfg:
    return _DATASETS.cfg(name)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = False) -> Splits:
    """(train, test) for a dataset name; ``train`` is None for evaluation-only sets."""
    cfg = get_dataset_cfg(name)
    path = Path(data_dir) if data_dir is not None else None
    train, test = _DATASETS.builder(name)(path, download)
    for split in (train, test):
        if split is not None:
            validate_images(split, cfg)
    return Splits(cfg, train, test)


def validate_images(images: ImageSet, cfg: DatasetCfg) -> None:
    x, y = images.x, images.y
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != cfg.in_channels:
        raise UserError(f"{cfg.name}: expected uint8 images N x {cfg.in_channels} x H x W, got {x.dtype} {tuple(x.shape)}")
    if x.shape[2] % 32 or x.shape[3] % 32:
        raise UserError(f"{cfg.name}: image size must be a multiple of 32, got {tuple(x.shape[2:])}")
    if len(y) != len(x) or len(x) == 0:
        raise UserError(f"{cfg.name}: {len(x)} images but {len(y)} labels")
    if int(y.min()) < 0 or int(y.max()) >= cfg.num_classes:
        raise UserError(f"{cfg.name}: labels must lie in [0, {cfg.num_classes - 1}], got [{int(y.min())}, {int(y.max())}]")


def _hwc_to_set(x: np.ndarray, y: np.ndarray) -> ImageSet:
    return ImageSet(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.as_tensor(np.asarray(y), dtype=torch.int64))


def _gray_to_set(x: np.ndarray | torch.Tensor, y) -> ImageSet:
    """28x28 grayscale to 1 x 32 x 32 by zero padding (Fashion-MNIST's transform)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.uint8)
    return ImageSet(torch.nn.functional.pad(x, (2, 2, 2, 2)).unsqueeze(1).contiguous(), torch.as_tensor(np.asarray(y), dtype=torch.int64))


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read named arrays from an ``.npz`` (never with pickles), with one-line errors."""
    if path.is_dir():
        raise UserError(f"{path} is a directory, expected an .npz file")
    if not path.exists():
        raise UserError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise UserError(f"{path} lacks arrays {missing} (has {npz.files})")
            return {k: npz[k] for k in keys}
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot read {path} as .npz: {exc}") from None


def _require_dir(name: str, data_dir: Path | None) -> Path:
    if data_dir is None:
        raise UserError(f"dataset {name!r} needs --data-dir")
    if not data_dir.is_dir():
        raise UserError(f"data directory {data_dir} does not exist or is not a directory")
    return data_dir


def _subset_file(data_dir: Path | None) -> Path:
    if data_dir is None:
        raise UserError("dataset 'cifar10-subset' needs --data-dir (a folder holding cifar10_subset.npz, or the .npz)")
    return data_dir / "cifar10_subset.npz" if data_dir.is_dir() else data_dir


def _how_to_fetch(name: str, root: Path, holds: str) -> str:
    """What to do about a dataset that is not on disk, true for every command that reads it (only
    ``train`` has ``--download``); never torchvision's own "use download=True" text."""
    return (f"`robust-attn train ... --dataset {name} --data-dir {root} --download` (or torchvision's download) "
            f"fetches it there, or point --data-dir at a folder that holds an existing copy ({holds})")


def _download_failed(name: str, root: Path, exc: BaseException) -> UserError:
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(f"could not download {name} into {root} ({why}); this needs internet access, "
                     f"or point --data-dir at a folder that holds an existing copy and drop --download")


def _torchvision_cifar(name: str, cls_name: str) -> Loader:
    def load(data_dir: Path | None, download: bool):
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        folder = f"{cls.base_folder}/, as torchvision's download leaves it"
        if data_dir is None and not download:
            raise UserError(f"dataset {name!r} needs --data-dir (a folder that holds {folder})")
        root = data_dir or Path("data")
        if not download and not (root / cls.base_folder).is_dir():
            raise UserError(f"{name} not found: {root / cls.base_folder}/ does not exist; {_how_to_fetch(name, root, folder)}")
        try:
            train, test = cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)
        except (RuntimeError, OSError) as exc:
            if download:
                raise _download_failed(name, root, exc) from None
            raise UserError(f"{name}: {root / cls.base_folder} is incomplete or corrupt (torchvision's checksums "
                            f"do not match); {_how_to_fetch(name, root, folder)}") from None
        return _hwc_to_set(train.data, train.targets), _hwc_to_set(test.data, test.targets)

    return load


register_dataset(DatasetCfg("cifar10", 10, 3, *_CIFAR10_STATS, True, "CIFAR-10 via torchvision", "cifar10-embedded"))(
    _torchvision_cifar("cifar10", "CIFAR10")
)
register_dataset(DatasetCfg("cifar100", 100, 3, *_CIFAR100_STATS, True, "CIFAR-100 via torchvision"))(
    _torchvision_cifar("cifar100", "CIFAR100")
)


_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _fashion_root(data_dir: Path) -> Path:
    """A root torchvision's FashionMNIST reads: ``data_dir`` itself when it has FashionMNIST/raw,
    else a cache folder where the four ``.gz`` idx files found in ``data_dir`` are decompressed."""
    if (data_dir / "FashionMNIST" / "raw").is_dir():
        return data_dir
    gz = [data_dir / f"{f}.gz" for f in _FASHION_FILES]
    if not all(p.exists() for p in gz):
        raise UserError(f"{data_dir} holds neither FashionMNIST/raw/ nor the four Fashion-MNIST .gz idx files; "
                        + _how_to_fetch("fashion-mnist", data_dir, "FashionMNIST/raw/ or the .gz files"))
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "robust-attn" / "fashion-mnist"
    raw = cache / "FashionMNIST" / "raw"
    for src, name in zip(gz, _FASHION_FILES):
        if not (raw / name).exists():
            try:
                atomic_write_bytes(raw / name, gzip.decompress(src.read_bytes()))
            except (OSError, EOFError) as exc:
                raise UserError(f"cannot decompress {src}: {exc}") from None
    return cache


@register_dataset(
    DatasetCfg("fashion-mnist", 10, 1, *_FASHION_STATS, True, "Fashion-MNIST via torchvision, padded to 32x32", "fashion-mnist-embedded")
)
def _load_fashion(data_dir: Path | None, download: bool):
    import torchvision

    root = _fashion_root(_require_dir("fashion-mnist", data_dir)) if not download else (data_dir or Path("data"))
    try:
        train = torchvision.datasets.FashionMNIST(str(root), train=True, download=download)
        test = torchvision.datasets.FashionMNIST(str(root), train=False, download=download)
    except (RuntimeError, OSError) as exc:
        if download:
            raise _download_failed("fashion-mnist", root, exc) from None
        raise UserError(f"fashion-mnist: the files under {root / 'FashionMNIST' / 'raw'} are incomplete; "
                        + _how_to_fetch("fashion-mnist", data_dir, "FashionMNIST/raw/ or the .gz files")) from None
    return _gray_to_set(train.data, train.targets), _gray_to_set(test.data, test.targets)


@register_dataset(
    DatasetCfg("cifar10-subset", 10, 3, *_CIFAR10_STATS, True, "4,660 train + 932 test genuine CIFAR-10 images (.npz)", "cifar10-embedded")
)
def _load_subset(data_dir: Path | None, download: bool):
    arrays = read_npz(_subset_file(data_dir), ("train_x", "train_y", "test_x", "test_y"))
    for key in ("train_x", "test_x"):
        if arrays[key].dtype != np.uint8 or arrays[key].ndim != 4 or arrays[key].shape[3] != 3:
            raise UserError(f"cifar10-subset: {key} must be uint8 N x H x W x 3, got {arrays[key].dtype} {arrays[key].shape}")
    return _hwc_to_set(arrays["train_x"], arrays["train_y"]), _hwc_to_set(arrays["test_x"], arrays["test_y"])


def embedded_path(filename: str) -> Path:
    return Path(str(resources.files("robust_attn") / "embedded" / filename))


@register_dataset(
    DatasetCfg("cifar10-embedded", 10, 3, *_CIFAR10_STATS, False, "the first 932 CIFAR-10 test images, shipped in the package")
)
def _load_cifar_embedded(data_dir: Path | None, download: bool):
    arrays = read_npz(embedded_path("cifar10_test_932.npz"), ("test_x", "test_y"))
    return None, _hwc_to_set(arrays["test_x"], arrays["test_y"])


@register_dataset(
    DatasetCfg("fashion-mnist-embedded", 10, 1, *_FASHION_STATS, False, "the first 1,000 Fashion-MNIST test images, shipped in the package")
)
def _load_fashion_embedded(data_dir: Path | None, download: bool):
    arrays = read_npz(embedded_path("fashion_mnist_test_1000.npz"), ("test_x", "test_y"))
    return None, _gray_to_set(arrays["test_x"], arrays["test_y"])


@register_dataset(DatasetCfg("synthetic", 10, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), True, "random class-coloured images, for tests"))
def _load_synthetic(data_dir: Path | None, download: bool):
    """Learnable random data: each class has its own mean colour, plus noise. Fixed seed."""
    g = torch.Generator().manual_seed(0)
    colours = torch.rand(10, 3, 1, 1, generator=g)

    def make(n: int) -> ImageSet:
        y = torch.randint(0, 10, (n,), generator=g)
        x = (colours[y] * 0.6 + torch.rand(n, 3, 32, 32, generator=g) * 0.4).mul(255).round().to(torch.uint8)
        return ImageSet(x, y)

    return make(256), make(128)


def make_subset(cifar_root: str | os.PathLike, out: str | os.PathLike, per_batch: int = 932) -> Path:
    """Rebuild ``cifar10_subset.npz`` from an official CIFAR-10 download: rows i < per_batch of each
    of the five train batches and of the test batch (torchvision keeps the batch order)."""
    import torchvision

    root = _require_dir("cifar10", Path(cifar_root))
    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=False)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=False)
    except RuntimeError:
        raise UserError(f"CIFAR-10 not found under {root} (torchvision's download leaves it in {root}/cifar-10-batches-py/); "
                        f"`robust-attn train ... --dataset cifar10 --data-dir {root} --download` fetches it") from None
    rows = [b * 10000 + i for b in range(5) for i in range(per_batch)]
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        train_x=train.data[rows],
        train_y=np.asarray(train.targets, dtype=np.int64)[rows],
        test_x=test.data[:per_batch],
        test_y=np.asarray(test.targets, dtype=np.int64)[:per_batch],
    )
    return atomic_write_bytes(out, buf.getvalue())
