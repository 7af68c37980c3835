"""Image datasets held in memory, served as an infinite, reshuffling stream of batches.

Sources: scikit-learn's bundled 8×8 digits (real images, no download), torchvision's MNIST,
Fashion-MNIST and CIFAR-10 (optional), and any folder of image files. Every source ends as a
float tensor (N, C, R, R) in [-1, 1]; the order of batches comes from the global torch RNG, so
``trainer.seed`` fixes it.

Every source holds out ``holdout`` of its images (10 % by default), which nothing trains on, and
may train on only the first ``limit`` of the rest (docs/limited_data.md). Which images those
are is fixed by the data set alone, never by the seed: every run of a data set holds out the
same images.
"""

from __future__ import annotations

import importlib
import os
import stat
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
#: data=folder refuses larger images (docs/evaluation.md): decoding one costs
#: memory in proportion to its pixels, and a very long, thin image resized on its short side
#: would become enormous (1 x 1 000 000 pixels at data.resolution=64: 64 x 64 000 000)
MAX_IMAGE_PIXELS = 50_000_000
MAX_ASPECT_RATIO = 16
#: unsigned 16-bit grayscale, mapped by 65535 (not clipped at 255 as ``convert("L")`` does)
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
#: seeds the one permutation that chooses the held-out images and the order ``limit`` takes
#: the rest in: a constant, so that the split depends on the data set alone
SPLIT_SEED = 20200611
MAX_HOLDOUT = 0.5


class DataError(ValueError):
    """A dataset that cannot be loaded; the message says why in one line."""


class ImageBatches:
    """Infinite batches of ``batch_size`` images: a fresh permutation every epoch.

    The images stay on the host; on CUDA each batch is copied from pinned memory without
    blocking, so the copy overlaps the previous step's kernels.

    ``images`` are what training draws; ``heldout`` the images held out of training (none by
    default) and ``reference`` every image loaded (by default ``images``): the real
    distribution an evaluation compares with. :func:`split` makes the three of a data set.
    """

    kind = "images"  # see ToyDistribution.kind

    def __init__(
        self,
        images: Tensor,
        batch_size: int,
        device: torch.device | str = "cpu",
        name: str = "images",
        *,
        heldout: Tensor | None = None,
        reference: Tensor | None = None,
    ) -> None:
        if images.dim() != 4 or len(images) == 0:
            raise DataError(
                f"expected a non-empty (N, C, H, W) image tensor, got {tuple(images.shape)}"
            )
        self.images = images.float().contiguous()
        self.heldout = (images[:0] if heldout is None else heldout).float().contiguous()
        self.reference = self.images if reference is None else reference.float().contiguous()
        self.name = name  # which dataset: the evaluator depends on it
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.shape: tuple[int, ...] = tuple(images.shape[1:])
        self._order = torch.empty(0, dtype=torch.long)
        self._position = 0
        self._shard: tuple[int, int, torch.Generator] | None = None

    def shard(self, rank: int, world_size: int, seed: int) -> None:
        """Multi-process training: every epoch, all ranks draw the same permutation (from a
        generator seeded alike) and rank r takes every world_size-th image from position r,
        so the ranks see disjoint images."""
        self._shard = (rank, world_size, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> ImageBatches:
        return self

    def __next__(self) -> Tensor:
        idx = self._next_indices(self.batch_size)
        return self._to_device(self.images.index_select(0, idx))

    def state_dict(self) -> dict[str, object]:
        """Where the stream is: the epoch's permutation and the position in it (and, sharded,
        the shared generator), and how many images it permutes."""
        state: dict[str, object] = {"order": self._order.clone(), "position": self._position}
        state["count"] = len(self.images)
        if self._shard is not None and len(self._order):
            state["epoch_rng"] = self._epoch_rng
        return state

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Sharded, every rank rebuilds its own slice of the saved epoch (rank 0 saved it). A
        stream over another number of training images (data.limit or data.holdout changed)
        is refused: its permutation indexes other images."""
        count = state.get("count", len(self.images))  # absent from older checkpoints
        if count != len(self.images):
            raise ValueError(
                f"it streams {count} training images, this config's data has {len(self.images)} "
                f"(data.holdout or data.limit differ)"
            )
        self._order, self._position = state["order"], int(state["position"])
        if self._shard is not None and "epoch_rng" in state:
            self._shard[2].set_state(state["epoch_rng"])
            self._order = self._permutation()

    def _next_indices(self, n: int) -> Tensor:
        parts, needed = [], n
        while needed:
            if self._position >= len(self._order):
                self._order, self._position = self._permutation(), 0
            take = self._order[self._position : self._position + needed]
            self._position += len(take)
            needed -= len(take)
            parts.append(take)
        return torch.cat(parts)

    def _permutation(self) -> Tensor:
        if self._shard is None:
            return torch.randperm(len(self.images))
        rank, world_size, generator = self._shard
        self._epoch_rng = generator.get_state()  # rebuilds this epoch's slice on any rank
        return torch.randperm(len(self.images), generator=generator)[rank::world_size]

    def _to_device(self, batch: Tensor) -> Tensor:
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    #: ``sample(..., generator=)`` indexes the images held in host memory: a CPU generator
    rng_device = torch.device("cpu")

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images drawn without replacement where possible; does not touch the stream."""
        count = len(self.images)
        idx = torch.randperm(count, generator=generator)[: min(n, count)]
        if n > count:
            extra = torch.randint(count, (n - count,), generator=generator)
            idx = torch.cat([idx, extra])
        return self._to_device(self.images.index_select(0, idx))


def split(
    images: Tensor, holdout: float = 0.1, limit: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(training images, held-out images, every image) of a data set: ``holdout`` of the
    images (at least one where it is > 0) held out, then the first ``limit`` of the rest (all
    by default) to train on, both in the order of a fixed permutation (SPLIT_SEED). Every image
    stays in its loaded order, so the evaluator's yardstick does not move with either."""
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)):
        raise DataError(f"data.holdout must be a number in [0, {MAX_HOLDOUT}], got {holdout!r}")
    if not 0 <= holdout <= MAX_HOLDOUT:
        raise DataError(f"data.holdout must be in [0, {MAX_HOLDOUT}], got {holdout}")
    count = len(images)
    held = max(1, round(holdout * count)) if holdout > 0 else 0
    if held >= count:
        raise DataError(
            f"data.holdout={holdout} holds out all {count} images, leaving none to train "
            "on; set data.holdout=0"
        )
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= count - held
    ):
        raise DataError(
            f"data.limit must be an int from 1 to the {count - held} images left after "
            f"data.holdout, or null; got {limit!r}"
        )
    if held == 0 and limit is None:
        return images, images[:0], images
    order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
    shuffled = images[order]
    end = count if limit is None else held + limit
    return shuffled[held:end], shuffled[:held], images


def _batches(
    images: Tensor,
    batch_size: int,
    device: torch.device | str,
    name: str,
    holdout: float,
    limit: int | None,
) -> ImageBatches:
    training, heldout, reference = split(images, holdout, limit)
    return ImageBatches(training, batch_size, device, name, heldout=heldout, reference=reference)


def _to_unit_range(images: Tensor, max_value: float) -> Tensor:
    return images.float().div(max_value / 2).sub(1.0)


def _resize(images: Tensor, resolution: int | None) -> Tensor:
    if resolution is None or images.shape[-1] == resolution:
        return images
    if resolution < 1:
        raise DataError(f"data.resolution must be >= 1, got {resolution}")
    return F.interpolate(
        images,
        size=(resolution, resolution),
        mode="bilinear",
        align_corners=False,
        antialias=resolution < images.shape[-1],
    )


def digits(
    batch_size: int,
    device: torch.device | str = "cpu",
    resolution: int = 8,
    holdout: float = 0.1,
    limit: int | None = None,
) -> ImageBatches:
    """scikit-learn's 1797 bundled 8×8 handwritten digits (pixel values 0–16), in [-1, 1],
    optionally resized to ``resolution`` (bilinear); ``holdout`` and ``limit`` as in
    :func:`split`."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("data=digits needs scikit-learn: pip install scikit-learn") from None
    images = torch.from_numpy(load_digits().images.astype(np.float32)).unsqueeze(1)
    images = _resize(_to_unit_range(images, 16.0), resolution)
    return _batches(images, batch_size, device, "digits", holdout, limit)


TORCHVISION_DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def torchvision_dataset(
    name: str,
    batch_size: int,
    device: torch.device | str = "cpu",
    root: str = "data",
    download: bool = False,
    train: bool = True,
    resolution: int | None = None,
    holdout: float = 0.1,
    limit: int | None = None,
) -> ImageBatches:
    """MNIST, Fashion-MNIST or CIFAR-10 through torchvision (``pip install ganopt[vision]``).

    With ``download=false`` (the default) the files must already be under ``root``.
    ``holdout`` and ``limit`` as in :func:`split`.
    """
    if name not in TORCHVISION_DATASETS:
        raise DataError(
            f"unknown torchvision dataset {name!r}; known: {', '.join(TORCHVISION_DATASETS)}"
        )
    try:
        datasets = importlib.import_module("torchvision.datasets")
    except Exception as e:  # ImportError, or a torchvision built for another torch
        raise DataError(
            f"data={name} needs torchvision matching your torch ({type(e).__name__}: {e}); "
            "pip install 'ganopt[vision]'"
        ) from None
    try:
        dataset = getattr(datasets, TORCHVISION_DATASETS[name])(
            root=root, train=train, download=download
        )
    except RuntimeError as e:  # torchvision's "Dataset not found. You can use download=True"
        raise DataError(
            f"data={name}: no dataset under {Path(root).resolve()} ({e}); "
            "set data.download=true or data.root=<dir with the files>"
        ) from None
    except OSError as e:  # offline download
        raise DataError(f"data={name}: download failed ({e})") from None
    raw = torch.as_tensor(np.asarray(dataset.data))
    images = raw.unsqueeze(1) if raw.dim() == 3 else raw.permute(0, 3, 1, 2)  # NHW or NHWC
    images = _resize(_to_unit_range(images, 255.0), resolution)
    return _batches(images, batch_size, device, name, holdout, limit)


def folder(
    batch_size: int,
    path: str | None = None,
    device: torch.device | str = "cpu",
    resolution: int = 64,
    channels: int = 3,
    holdout: float = 0.1,
    limit: int | None = None,
) -> ImageBatches:
    """Every image file under ``path`` (recursively), resized so its short side is
    ``resolution``, center-cropped to a square, as RGB (``channels=3``) or grayscale (1).

    8-bit images map 0..255 onto [-1, 1]; 16-bit grayscale (PNG, TIFF) maps 0..65535 likewise,
    resized as float so it keeps its precision. Float (mode F) and 32-bit integer (mode I)
    pixels are refused: they have no fixed range to map, and guessing one would shift every
    value silently. The one mode I accepted is a PNG's: PNG holds at most 16 bits a channel,
    and older Pillow opens 16-bit grayscale PNG as I (newer as I;16). ``holdout`` and ``limit``
    as in :func:`split`.
    """
    if not path:
        raise DataError("data=folder needs data.path=<a folder of images>")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path {str(root)!r} is not a folder")
    files = _image_files(root)
    if not files:
        raise DataError(
            f"data.path {str(root)!r} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    if channels not in (1, 3):
        raise DataError(f"data.channels must be 1 or 3, got {channels}")
    if resolution < 1:
        raise DataError(f"data.resolution must be >= 1, got {resolution}")
    images = torch.empty(len(files), channels, resolution, resolution)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as img:  # reads the header only: the size before decoding
                _check_size(file, img.size)
                images[i] = _load(file, img, channels, resolution)  # grayscale fills RGB
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise DataError(f"cannot read image {str(file)!r}: {e}") from None
    return _batches(images, batch_size, device, "folder", holdout, limit)


def _image_files(root: Path) -> list[Path]:
    """The files under ``root`` named like images, each checked by ``os.stat`` (which follows
    a symlink without opening anything) to be a regular file: opening a named pipe blocks until
    something writes to it, and a device may never end."""
    files = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError as e:  # a broken symlink
            raise DataError(f"cannot read image {str(path)!r}: {e}") from None
        if stat.S_ISDIR(mode):  # a folder named like an image: rglob lists what it holds
            continue
        if not stat.S_ISREG(mode):
            raise DataError(
                f"{str(path)!r} is not a regular file (a named pipe, socket or device); "
                "data=folder reads only image files"
            )
        files.append(path)
    return files


def _load(file: Path, img: Image.Image, channels: int, resolution: int) -> Tensor:
    """One image as a (C, R, R) tensor in [-1, 1]: C is 1 for grayscale, else ``channels``."""
    if img.mode in SIXTEEN_BIT_MODES or (img.mode == "I" and img.format == "PNG"):
        # bicubic overshoots in float; clipped to the range as an 8-bit resize clips to 0..255
        pixels = np.asarray(_square(img.convert("F"), resolution)).clip(0, 65535)
        return _to_unit_range(torch.from_numpy(pixels).unsqueeze(0), 65535.0)
    if img.mode in ("I", "F"):
        kind = "float" if img.mode == "F" else "integer"
        raise DataError(
            f"image {str(file)!r} has 32-bit {kind} pixels (mode {img.mode}) with no fixed "
            "range; convert it to 8- or 16-bit"
        )
    pixels = np.array(_square(img.convert("L" if channels == 1 else "RGB"), resolution))
    tensor = torch.from_numpy(pixels)
    return _to_unit_range(tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1), 255.0)


def _check_size(file: Path, size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_IMAGE_PIXELS:
        raise DataError(
            f"image {str(file)!r} is {w} x {h} pixels, over data=folder's limit of "
            f"{MAX_IMAGE_PIXELS:,}"
        )
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise DataError(
            f"image {str(file)!r} is {w} x {h} pixels: more than {MAX_ASPECT_RATIO} times as "
            f"long as it is wide, so its center square would keep almost nothing of it"
        )


def _square(img: Image.Image, resolution: int) -> Image.Image:
    """Resize the short side to ``resolution``, then crop the center square."""
    w, h = img.size
    scale = resolution / min(w, h)
    img = img.resize(
        (max(resolution, round(w * scale)), max(resolution, round(h * scale))),
        Image.Resampling.BICUBIC,
    )
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))
