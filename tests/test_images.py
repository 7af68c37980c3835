"""Image data (folder, digits, torchvision) and the DCGAN networks, on tiny data."""

import importlib.util
import os
import re
import sys
import threading
import types

import numpy as np
import pytest
import torch
from PIL import Image

from ganopt.composition import compose_config
from ganopt.config import ConfigError
from ganopt.data import DataError, ImageBatches, digits, folder, torchvision_dataset
from ganopt.data.images import split
from ganopt.models import DCGANDiscriminator, DCGANGenerator
from ganopt.setup.assembly import build


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_folder_resizes_center_crops_and_scales_to_unit_range(tmp_path):
    half = np.zeros((20, 40, 3))  # 40 wide, 20 high: left half black, right half white
    half[:, 20:] = 255
    write_png(tmp_path / "a.png", half)
    write_png(tmp_path / "nested" / "b.png", np.full((50, 30, 3), 255))
    (tmp_path / "notes.txt").write_text("not an image")
    data = folder(batch_size=4, path=str(tmp_path), resolution=16, holdout=0)
    assert data.shape == (3, 16, 16)
    assert len(data) == 2
    first = data.images[0]  # sorted: a.png first
    assert first.min() == -1.0 and first.max() == 1.0
    # short side 20 → 16, width 40 → 32, center crop keeps columns 8..23: 8 black, 8 white
    assert torch.all(first[:, :, :7] == -1) and torch.all(first[:, :, 9:] == 1)
    assert torch.all(data.images[1] == 1)
    assert next(data).shape == (4, 3, 16, 16)


def test_folder_grayscale(tmp_path):
    write_png(tmp_path / "g.png", np.full((8, 8, 3), 128))
    gray = folder(batch_size=2, path=str(tmp_path), resolution=8, channels=1, holdout=0)
    assert gray.shape == (1, 8, 8)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "needs data.path"),
        (lambda p: str(p / "missing"), "is not a folder"),
        (lambda p: str(p), "holds no image files"),
    ],
    ids=["no path", "missing", "empty"],
)
def test_folder_errors_are_one_line(tmp_path, make, message):
    with pytest.raises(DataError, match=message) as info:
        folder(batch_size=2, path=make(tmp_path))
    assert "\n" not in str(info.value)


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        folder(batch_size=2, path=str(tmp_path))


def test_16_bit_png_spans_the_unit_range_and_8_bit_images_load_as_before(tmp_path):
    levels = np.array([0, 8192, 16384, 24576, 32768, 40960, 49152, 65535])
    Image.fromarray(np.tile(levels, (8, 1)).astype(np.uint16)).save(tmp_path / "a16.png")
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3))
    write_png(tmp_path / "b8.png", rgb)
    data = folder(batch_size=2, path=str(tmp_path), resolution=8, holdout=0)
    gray = data.images[0]  # a 16-bit grayscale PNG, repeated in R, G and B
    expected = torch.tensor(levels / 32767.5 - 1, dtype=torch.float32).expand(3, 8, 8)
    assert torch.allclose(gray, expected, atol=1e-6)
    assert gray[:, :, 4].abs().max() < 1e-4  # 32768: the middle, not saturated at 255
    assert (gray == 1).float().mean() == 1 / 8  # only the 65535 column is white
    # the 8-bit image: bit for bit what 0..255 / 127.5 - 1 gives, as before 16-bit support
    old = torch.from_numpy(rgb.astype(np.uint8)).permute(2, 0, 1).float().div(127.5).sub(1.0)
    assert torch.equal(data.images[1], old)
    # resized (in float), the gradient keeps its mean and range
    small = folder(batch_size=2, path=str(tmp_path), resolution=4, channels=1, holdout=0)
    small = small.images[0]
    assert small.min() >= -1 and small.max() <= 1
    assert small.mean().item() == pytest.approx(expected.mean().item(), abs=0.02)


@pytest.mark.parametrize(("dtype", "kind"), [(np.float32, "float"), (np.int32, "integer")])
def test_32_bit_images_without_a_fixed_range_are_refused(tmp_path, dtype, kind):
    write_png(tmp_path / "a.png", np.zeros((8, 8, 3)))
    Image.fromarray(np.full((8, 8), 1000, dtype=dtype)).save(tmp_path / "deep.tif")
    with pytest.raises(DataError, match=rf"deep\.tif.* 32-bit {kind} .*convert it to 8- or 16-bit"):
        folder(batch_size=2, path=str(tmp_path), resolution=8)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_opening_it_and_symlinks_load(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((8, 8, 3)))
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)  # opening it to read blocks until something writes to it
    raised = []

    def load():
        try:
            folder(batch_size=2, path=str(tmp_path), resolution=8)
        except DataError as e:
            raised.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # stuck in open(): a writer that closes at once releases it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("folder() blocked opening the named pipe x.png")
    assert len(raised) == 1
    assert re.search(r"x\.png.* is not a regular file", str(raised[0]))
    assert "\n" not in str(raised[0])
    fifo.unlink()
    assert len(folder(batch_size=2, path=str(tmp_path), resolution=8, holdout=0)) == 2


def test_folder_without_path_is_rejected_before_training():
    with pytest.raises(ConfigError, match=r"data: data=folder needs data\.path"):
        build(compose_config(["model=dcgan", "data=folder"]))


def test_digits_are_the_1797_bundled_images_in_unit_range():
    data = digits(batch_size=32, holdout=0)
    assert len(data) == 1797 and data.shape == (1, 8, 8)
    assert data.images.min() == -1.0 and data.images.max() == 1.0
    assert data.reference is data.images and len(data.heldout) == 0
    up = digits(batch_size=32, resolution=16)
    assert up.shape == (1, 16, 16) and next(up).shape == (32, 1, 16, 16)


def test_batches_reshuffle_every_epoch_and_follow_the_seed():
    images = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 8, 8)

    def first_draws(seed):
        torch.manual_seed(seed)
        data = ImageBatches(images, batch_size=4)
        return torch.cat([next(data)[:, 0, 0, 0] for _ in range(5)]).long().tolist()

    draws = first_draws(0)
    assert sorted(draws[:10]) == list(range(10))  # each epoch is a permutation
    assert sorted(draws[10:20]) == list(range(10))
    assert draws[:10] != draws[10:20]
    assert first_draws(0) == draws
    assert first_draws(1) != draws


def test_sample_leaves_the_stream_and_global_rng_alone():
    torch.manual_seed(0)
    data = ImageBatches(torch.randn(20, 1, 8, 8), batch_size=5)
    state = torch.get_rng_state()
    sample = data.sample(30, generator=torch.Generator().manual_seed(3))
    assert sample.shape == (30, 1, 8, 8)
    assert torch.equal(torch.get_rng_state(), state)


def rows(images):
    """Each image as a tuple of its pixels: images compared as a set."""
    return {tuple(x.flatten().tolist()) for x in images}


def test_digits_hold_out_a_tenth_disjoint_from_training_and_the_reference_holds_both():
    data = digits(batch_size=32)
    assert (len(data), len(data.heldout), len(data.reference)) == (1617, 180, 1797)
    train, heldout, every = rows(data.images), rows(data.heldout), rows(data.reference)
    assert not train & heldout
    assert train | heldout == every == rows(digits(batch_size=32, holdout=0).images)
    assert next(data).shape == (32, 1, 8, 8)


def test_limit_trains_on_the_first_n_of_the_rest_and_holds_out_as_many_as_before():
    full, limited = digits(batch_size=8), digits(batch_size=8, limit=200)
    assert (len(limited), len(limited.heldout), len(limited.reference)) == (200, 180, 1797)
    assert torch.equal(limited.images, full.images[:200])  # the same fixed order
    assert torch.equal(limited.heldout, full.heldout)
    assert len(digits(batch_size=8, holdout=0, limit=5)) == 5


def test_at_least_one_image_is_held_out_and_holdout_zero_keeps_the_images_as_loaded():
    images = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 8, 8)
    training, heldout, reference = split(images, holdout=0.01)
    assert (len(training), len(heldout), len(reference)) == (5, 1, 6)
    training, heldout, reference = split(images, holdout=0)
    assert training is images and reference is images and len(heldout) == 0
    assert len(split(images, holdout=0, limit=2)[0]) == 2


def test_the_split_depends_on_the_data_alone_not_the_seed_nor_the_global_rng():
    heldout = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        heldout.append(digits(batch_size=8).heldout)
        assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(*heldout)
    built = [
        build(compose_config(["model=dcgan", "data=digits", f"trainer.seed={seed}"])).data
        for seed in (0, 1)
    ]
    assert torch.equal(built[0].heldout, built[1].heldout)
    assert torch.equal(built[0].images, built[1].images)
    assert not torch.equal(next(built[0]), next(digits(batch_size=256)))  # draws: the seed's


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"holdout": 0.7}, "data.holdout must be in [0, 0.5], got 0.7"),
        ({"holdout": -0.1}, "data.holdout must be in [0, 0.5], got -0.1"),
        ({"holdout": "a"}, "data.holdout must be a number in [0, 0.5]"),
        ({"limit": 0}, "data.limit must be an int from 1 to the 1617 images left after"),
        ({"limit": 1618}, "data.limit must be an int from 1 to the 1617 images left after"),
        ({"limit": 2.5}, "data.limit must be an int"),
    ],
)
def test_holdout_and_limit_out_of_range_are_refused_in_one_line(kwargs, message):
    with pytest.raises(DataError) as raised:
        digits(batch_size=8, **kwargs)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_single_image_cannot_be_held_out_and_trained_on():
    with pytest.raises(DataError, match=r"holds out all 1 images.*data\.holdout=0"):
        split(torch.zeros(1, 1, 8, 8), holdout=0.1)


def test_image_batches_built_directly_hold_nothing_out():
    images = torch.randn(10, 1, 8, 8)
    data = ImageBatches(images, batch_size=4)
    assert data.reference is data.images and data.heldout.shape == (0, 1, 8, 8)


def test_a_stream_saved_over_other_training_images_is_refused_on_load():
    data = digits(batch_size=8, limit=100)
    next(data)
    state = data.state_dict()
    same = digits(batch_size=8, limit=100)
    same.load_state_dict(state)
    assert torch.equal(next(same), next(data))
    with pytest.raises(
        ValueError, match="streams 100 training images, this config's data has 1617"
    ):
        digits(batch_size=8).load_state_dict(state)


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed here"
)
def test_torchvision_data_without_torchvision_is_a_clean_error():
    with pytest.raises(ConfigError, match="data: data=mnist needs torchvision"):
        build(compose_config(["model=dcgan", "data=mnist"]))


@pytest.fixture
def fake_torchvision(monkeypatch):
    """Stands in for torchvision.datasets, with the attributes ganopt reads."""

    class MNIST:
        def __init__(self, root, train, download):
            if not download and root == "nowhere":
                raise RuntimeError("Dataset not found. You can use download=True to download it")
            self.data = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8)  # NHW tensor

    class CIFAR10:
        def __init__(self, root, train, download):
            self.data = np.random.default_rng(0).integers(
                0, 256, (5, 32, 32, 3), dtype=np.uint8
            )  # NHWC array

    module = types.ModuleType("torchvision.datasets")
    module.MNIST, module.FashionMNIST, module.CIFAR10 = MNIST, MNIST, CIFAR10
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", module)


@pytest.mark.usefixtures("fake_torchvision")
@pytest.mark.parametrize(("name", "shape"), [("mnist", (1, 32, 32)), ("cifar10", (3, 32, 32))])
def test_torchvision_datasets_become_unit_range_image_batches(name, shape):
    data = torchvision_dataset(name, batch_size=2, resolution=32)
    assert data.shape == shape
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert next(data).shape == (2, *shape)


@pytest.mark.usefixtures("fake_torchvision")
def test_missing_torchvision_files_offline_say_what_to_do():
    with pytest.raises(DataError, match=r"set data\.download=true or data\.root"):
        torchvision_dataset("mnist", batch_size=2, root="nowhere")


@pytest.mark.parametrize("resolution", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_at_each_resolution(resolution, channels):
    shape = (channels, resolution, resolution)
    G = DCGANGenerator(z_dim=10, data_shape=shape, width=8)
    D = DCGANDiscriminator(data_shape=shape, width=8, norm="layer")
    x = G(torch.randn(3, 10))
    assert x.shape == (3, *shape)
    assert x.abs().max() <= 1  # tanh
    assert D(x).shape == (3,)


def test_dcgan_init_and_normalization_choices():
    G = DCGANGenerator(z_dim=100, data_shape=(1, 32, 32))
    assert G.up1.conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert isinstance(
        DCGANDiscriminator((1, 16, 16), norm="batch").down2.norm, torch.nn.BatchNorm2d
    )
    assert isinstance(DCGANDiscriminator((1, 16, 16), norm="layer").down2.norm, torch.nn.GroupNorm)
    assert isinstance(DCGANDiscriminator((1, 16, 16), norm="none").down2.norm, torch.nn.Identity)
    with pytest.raises(ValueError, match="norm must be one of"):
        DCGANDiscriminator((1, 16, 16), norm="spectral")


def test_dcgan_rejects_other_resolutions_naming_the_shape():
    with pytest.raises(ConfigError, match=r"model.g: .*square images of side 8, 16, 32, 64.*28"):
        build(compose_config(["model=dcgan", "data=digits", "data.resolution=28"]))
