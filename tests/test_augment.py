"""DiffAugment (ganopt/augment.py): each operation against a hand computation from the same
random draws, shapes and gradients, the policy, and where the objective applies it."""

import pytest
import torch

from ganopt.augment import (
    DiffAugment,
    brightness,
    contrast,
    cutout,
    parse_policy,
    saturation,
    translation,
)
from ganopt.checkpoint import load
from ganopt.losses import NonSaturatingLoss, RelativisticLoss
from ganopt.objective import Objective
from ganopt.regularizers import r1
from tests.conftest import make_trainer

OPERATIONS = [brightness, saturation, contrast, translation, cutout]


def images(n=3, c=3, size=16, dtype=torch.float32):
    """A fixed batch with a different value at every position."""
    count = n * c * size * size
    return torch.linspace(-1, 1, count, dtype=dtype).view(n, c, size, size).sin()


def uniforms(seed, x):
    """The per-sample U[0, 1) numbers an operation draws first after ``manual_seed(seed)``."""
    torch.manual_seed(seed)
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)


def test_brightness_adds_u_minus_a_half_to_every_pixel_of_a_sample():
    x = images()
    u = uniforms(0, x)
    torch.manual_seed(0)
    out = brightness(x)
    for n in range(len(x)):
        assert torch.allclose(out[n], x[n] + (u[n, 0, 0, 0].item() - 0.5))


def test_saturation_scales_the_distance_from_the_channel_mean_by_2u():
    x = images()
    u = uniforms(1, x)
    torch.manual_seed(1)
    out = saturation(x)
    for n in range(len(x)):
        mean = (x[n, 0] + x[n, 1] + x[n, 2]) / 3  # per pixel, over channels
        expected = (x[n] - mean) * (2 * u[n, 0, 0, 0].item()) + mean
        assert torch.allclose(out[n], expected, atol=1e-6)


def test_contrast_scales_the_distance_from_the_image_mean_by_u_plus_a_half():
    x = images()
    u = uniforms(2, x)
    torch.manual_seed(2)
    out = contrast(x)
    for n in range(len(x)):
        mean = x[n].sum() / x[n].numel()
        expected = (x[n] - mean) * (u[n, 0, 0, 0].item() + 0.5) + mean
        assert torch.allclose(out[n], expected, atol=1e-6)


def test_translation_shifts_each_sample_by_up_to_an_eighth_with_zeros_moving_in():
    x = images(n=8, size=16)  # shifts of up to 2 pixels each way
    torch.manual_seed(3)
    dy = torch.randint(-2, 3, (8, 1))
    dx = torch.randint(-2, 3, (8, 1))
    torch.manual_seed(3)
    out = translation(x)
    expected = torch.zeros_like(x)
    for n in range(8):
        for i in range(16):
            for j in range(16):
                si, sj = i + dy[n, 0].item(), j + dx[n, 0].item()
                if 0 <= si < 16 and 0 <= sj < 16:
                    expected[n, :, i, j] = x[n, :, si, sj]
    assert torch.equal(out, expected)
    assert {(a, b) for a, b in zip(dy[:, 0].tolist(), dx[:, 0].tolist(), strict=True)} != {(0, 0)}


def test_translation_of_an_image_smaller_than_eight_pixels_moves_nothing():
    x = images(size=7)
    assert torch.equal(translation(x), x)


def test_cutout_zeroes_a_half_size_square_that_may_reach_past_the_border():
    x = images(n=16, size=8)  # a 4 x 4 square centred anywhere in 0..8
    torch.manual_seed(4)
    centre_r = torch.randint(0, 9, (16, 1, 1))
    centre_c = torch.randint(0, 9, (16, 1, 1))
    torch.manual_seed(4)
    out = cutout(x)
    for n in range(16):
        top, left = centre_r[n].item() - 2, centre_c[n].item() - 2
        mask = torch.ones(8, 8)
        mask[max(top, 0) : max(top + 4, 0), max(left, 0) : max(left + 4, 0)] = 0
        assert torch.equal(out[n], x[n] * mask), n
    zeroed = (out == 0).flatten(1).sum(1) // 3  # pixels per sample, every channel
    assert zeroed.max() == 16 and zeroed.min() < 16  # whole squares, and clipped ones


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("operation", [*OPERATIONS, DiffAugment()])
def test_shape_dtype_and_device_are_kept(operation, dtype):
    for shape in [(4, 3, 16, 16), (2, 1, 8, 8), (3, 2, 9, 12)]:
        x = torch.randn(shape, dtype=dtype)
        out = operation(x)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_draws_stay_on_the_device():
    x = torch.randn(4, 3, 16, 16, device="cuda")
    assert DiffAugment()(x).device == x.device


def seeded(operation, seed=0):
    """``operation`` with the same random draws at every call: what gradcheck differentiates."""

    def fixed(x):
        torch.manual_seed(seed)
        return operation(x)

    return fixed


@pytest.mark.parametrize("operation", [brightness, saturation, contrast])
def test_color_operations_are_differentiable_in_their_input(operation):
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(seeded(operation), (x,))


def test_the_whole_policy_is_differentiable_in_its_input():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(seeded(DiffAugment()), (x,))


@pytest.mark.parametrize("operation", [translation, cutout])
def test_translation_and_cutout_pass_the_gradient_through_their_mask(operation):
    """Each output pixel is one input pixel or 0: the gradient of the sum is 1 at the input
    pixels that reach the output and 0 elsewhere, and it is the same shift or mask applied
    backwards (gradcheck: linear, so exact)."""
    x = torch.randn(4, 2, 16, 16, dtype=torch.float64, requires_grad=True)
    out = seeded(operation, 5)(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert set(grad.unique().tolist()) <= {0.0, 1.0}
    assert grad.sum() == (out != 0).sum()  # each kept pixel once
    small = torch.randn(2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(seeded(operation, 5), (small,))


def test_the_draws_come_from_the_global_rng_so_the_seed_fixes_them():
    x = images()
    torch.manual_seed(7)
    first = DiffAugment()(x)
    torch.manual_seed(7)
    assert torch.equal(DiffAugment()(x), first)
    assert not torch.equal(DiffAugment()(x), first)  # the stream moved on


def test_policy_names_the_operations_in_order():
    assert parse_policy("color,translation,cutout") == ["color", "translation", "cutout"]
    assert parse_policy(["cutout", " color "]) == ["cutout", "color"]
    augment = DiffAugment("translation,color")
    assert augment.operations == [translation, brightness, saturation, contrast]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            "color,colour",
            "no augmentation 'colour' in policy 'color,colour'; choose from color, "
            "translation, cutout",
        ),
        ("", "names no augmentation; choose from color, translation, cutout"),
        ("color,,cutout", "names no augmentation"),
        (3, "policy must be names separated by commas"),
    ],
)
def test_an_unknown_or_empty_policy_is_refused_in_one_line(policy, message):
    with pytest.raises(ValueError, match=r"choose from|must be") as raised:
        DiffAugment(policy)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


class Linear(torch.nn.Module):
    """D or G: a sum over the input's features, with one weight."""

    def __init__(self, z_dim=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))
        self.z_dim = z_dim

    def forward(self, x):
        if self.z_dim is not None:
            return self.w * x.view(len(x), 1, 2, 2)
        return self.w * x.flatten(1).sum(1)


def plus_one(x):
    return x + 1


def test_the_objective_augments_every_input_of_d_in_both_steps_and_the_game():
    G, D = Linear(z_dim=4), Linear()
    real, z = torch.randn(5, 1, 2, 2), torch.randn(5, 4)
    plain = Objective(NonSaturatingLoss(), [r1(gamma=1.0)])
    augmented = Objective(NonSaturatingLoss(), [r1(gamma=1.0)], augment=plus_one)
    d = augmented.d_pass(G, D, real, z, 1, D)
    assert torch.equal(d.real, real + 1) and torch.allclose(d.fake, G(z).detach() + 1)
    assert torch.allclose(d.out_real, D(real + 1))
    assert d.penalty is not None  # R1 differentiates D at the augmented reals
    g = augmented.g_pass(G, D, z, 1)
    assert torch.allclose(g.out_fake, D(G(z) + 1))
    loss_G, loss_D = augmented.game_losses(G, D, real, z, 1)
    assert torch.allclose(loss_D, d.objective) and torch.allclose(loss_G, g.loss)
    unaugmented = plain.d_pass(G, D, real, z, 1, D)
    assert not torch.allclose(unaugmented.out_real, d.out_real)


def test_a_relativistic_g_step_augments_the_reals_it_reads():
    G, D = Linear(z_dim=4), Linear()
    real, z = torch.randn(5, 1, 2, 2), torch.randn(5, 4)
    g = Objective(RelativisticLoss(), augment=plus_one).g_pass(G, D, z, 1, real)
    assert torch.allclose(g.out_real, D(real + 1))


DIGITS = [
    *["model=dcgan", "data=digits", "model.g.width=4", "model.d.width=4", "reg=none"],
    *["trainer.batch_size=16", "trainer.ckpt_every=2"],
]


def test_a_checkpoint_names_its_augmentation_and_another_one_cannot_resume_it(tmp_path):
    """aug joins the checkpoint's identity when it augments; a run without augmentation keeps
    the identity of checkpoints written before augmentation existed."""
    saved = {}
    for aug in ("none", "diffaugment"):
        trainer, _ = make_trainer([*DIGITS, f"aug={aug}", "trainer.steps=2"], tmp_path / aug)
        assert trainer.fit().status == "ok"
        saved[aug] = load(tmp_path / aug / "checkpoints" / "last.pt")
    assert "aug" not in saved["none"]["identity"]["components"]
    assert saved["diffaugment"]["identity"]["components"]["aug"] == "diffaugment"
    for aug, other in (("none", "diffaugment"), ("diffaugment", "none")):
        resumed, _ = make_trainer([*DIGITS, f"aug={other}", "trainer.steps=4"], tmp_path / "x")
        with pytest.raises(
            ValueError, match=f"the checkpoint's aug is {aug}, this run's is {other}"
        ):
            resumed.state.load_state_dict(saved[aug])
    same, _ = make_trainer([*DIGITS, "aug=diffaugment", "trainer.steps=4"], tmp_path / "same")
    same.state.load_state_dict(saved["diffaugment"])
    assert same.step == 2 and same.fit().status == "ok"
