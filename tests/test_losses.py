"""The losses against their textbook formulas, and their analytic gradients against autograd."""

import math

import pytest
import torch

from ganopt.losses import (
    GENERATOR_LOSSES,
    HingeLoss,
    LeastSquaresLoss,
    NonSaturatingLoss,
    RelativisticAverageLoss,
    RelativisticAverageLSLoss,
    RelativisticLoss,
    StandardLoss,
    WassersteinLoss,
    WGANGPLoss,
)

LOSSES = [
    StandardLoss(),
    NonSaturatingLoss(),
    WassersteinLoss(),
    WGANGPLoss(),
    HingeLoss(),
    LeastSquaresLoss(),
    RelativisticLoss(),
    RelativisticAverageLoss(),
    RelativisticAverageLSLoss(),
]
LOGITS = torch.linspace(-20, 20, 81, dtype=torch.float64)


def sigmoid(a: float) -> float:
    return 1 / (1 + math.exp(-a))


def test_sigmoid_losses_match_textbook_formulas_on_hand_computed_logits():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d_textbook = -(
        sum(math.log(sigmoid(a)) for a in (2.0, -1.0)) / 2
        + sum(math.log(1 - sigmoid(a)) for a in (0.5, -3.0)) / 2
    )
    for loss in (StandardLoss(), NonSaturatingLoss()):
        assert loss.d_loss(real, fake).item() == pytest.approx(d_textbook, rel=1e-6)
    # standard: G minimizes E[log(1 - D(G(z)))]; non-saturating: G minimizes -E[log D(G(z))]
    saturating = sum(math.log(1 - sigmoid(a)) for a in (0.5, -3.0)) / 2
    nonsaturating = -sum(math.log(sigmoid(a)) for a in (0.5, -3.0)) / 2
    assert StandardLoss().g_loss(fake).item() == pytest.approx(saturating, rel=1e-6)
    assert NonSaturatingLoss().g_loss(fake).item() == pytest.approx(nonsaturating, rel=1e-6)


def test_wgan_loss_is_the_raw_critic_difference():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    loss = WassersteinLoss()
    assert loss.d_loss(real, fake).item() == pytest.approx((0.5 - 3.0) / 2 - (2.0 - 1.0) / 2)
    assert loss.g_loss(fake).item() == pytest.approx(-(0.5 - 3.0) / 2)


def test_standard_generator_loss_is_minus_the_discriminators_fake_term():
    """Minimax: L_G is exactly the part of -L_D that depends on G."""
    fake = torch.randn(64)
    loss = StandardLoss()
    zeros_real = torch.full((64,), 50.0)  # log D(real) ≈ 0
    assert loss.g_loss(fake).item() == pytest.approx(
        -loss.d_loss(zeros_real, fake).item(), abs=1e-6
    )


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: type(x).__name__)
def test_analytic_gradients_match_autograd(loss):
    real = LOGITS.clone().requires_grad_(True)
    fake = LOGITS.flip(0).clone().requires_grad_(True)
    n = len(LOGITS)
    d_real, d_fake = torch.autograd.grad(loss.d_loss(real, fake), [real, fake])
    (g_fake,) = torch.autograd.grad(loss.g_loss(fake, real), [fake])
    analytic_real, analytic_fake = loss.d_grad(real.detach(), fake.detach())
    # analytic gradients are per sample: N times the gradient of the batch mean
    torch.testing.assert_close(analytic_real, n * d_real, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(analytic_fake, n * d_fake, rtol=1e-10, atol=1e-12)
    analytic_g = loss.g_grad(fake.detach(), real.detach())
    torch.testing.assert_close(analytic_g, n * g_fake, rtol=1e-10, atol=1e-12)


def test_generator_gradient_at_minus_ten_saturates_only_for_the_standard_loss():
    """docs/gradients.md: at a = -10, d/da log(1 - sigmoid(a)) = -4.54e-5 and
    d/da -log sigmoid(a) = -0.99995."""
    a = torch.tensor([-10.0], dtype=torch.float64)
    assert StandardLoss().g_grad(a).item() == pytest.approx(-4.5398e-5, rel=1e-4)
    assert NonSaturatingLoss().g_grad(a).item() == pytest.approx(-0.999955, rel=1e-6)
    assert WassersteinLoss().g_grad(a).item() == -1.0


@pytest.mark.parametrize("loss", LOSSES, ids=lambda x: type(x).__name__)
def test_losses_and_gradients_stay_finite_for_extreme_logits(loss):
    """log(sigmoid(a)) would return -inf at a = -200 in float32; softplus does not."""
    extreme = torch.tensor([-200.0, -90.0, 90.0, 200.0], requires_grad=True)
    for value in (loss.d_loss(extreme, extreme.flip(0)), loss.g_loss(extreme, extreme.flip(0))):
        assert torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, [extreme])
        assert torch.isfinite(grad).all()
    assert StandardLoss().g_loss(torch.tensor([200.0])).item() == pytest.approx(-200.0)
    assert NonSaturatingLoss().g_loss(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_hinge_and_least_squares_match_their_formulas():
    real, fake = torch.tensor([2.0, 0.5, -1.5]), torch.tensor([0.5, -3.0, -0.5])
    hinge = HingeLoss()
    assert hinge.d_loss(real, fake).item() == pytest.approx(
        (0 + 0.5 + 2.5) / 3 + (1.5 + 0 + 0.5) / 3
    )
    assert hinge.g_loss(fake).item() == pytest.approx(-(0.5 - 3.0 - 0.5) / 3)
    ls = LeastSquaresLoss()
    assert ls.d_loss(real, fake).item() == pytest.approx(
        0.5 * (1.0 + 0.25 + 6.25) / 3 + 0.5 * (0.25 + 9.0 + 0.25) / 3
    )
    assert ls.g_loss(fake).item() == pytest.approx(0.5 * (0.25 + 16.0 + 2.25) / 3)


def test_wgan_gp_is_wgan_plus_its_penalty():
    loss = WGANGPLoss(lam=10.0)
    real, fake = torch.randn(8), torch.randn(8)
    assert torch.equal(loss.d_loss(real, fake), WassersteinLoss().d_loss(real, fake))
    assert loss.regularizer.weight == 10.0
    assert (loss.regularizer.where, loss.regularizer.center) == ("interp", 1.0)


def test_generator_losses_registry_has_one_entry_per_distinct_generator_objective():
    assert set(GENERATOR_LOSSES) == {
        *("standard", "nonsaturating", "wgan", "lsgan"),
        *("rsgan", "rasgan", "ralsgan"),
    }
    assert HingeLoss.g_loss is WassersteinLoss.g_loss is WGANGPLoss.g_loss


def test_relativistic_losses_match_the_papers_code_on_hand_computed_logits():
    """Jolicoeur-Martineau (2019), code/GAN_losses_iter.py: RSGAN is BCE(C(x_r) - C(x_f), 1);
    RaSGAN and RaLSGAN average their real and fake terms (the /2); G swaps real and fake."""
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    m_r, m_f = 0.5, -1.25

    def nll(a):  # -log sigmoid(a)
        return -math.log(sigmoid(a))

    rs = sum(nll(r - f) for r, f in ((2.0, 0.5), (-1.0, -3.0))) / 2
    assert RelativisticLoss().d_loss(real, fake).item() == pytest.approx(rs)
    ra_d = (
        sum(nll(r - m_f) for r in (2.0, -1.0)) / 2 + sum(nll(-(f - m_r)) for f in (0.5, -3.0)) / 2
    ) / 2
    ra_g = (
        sum(nll(-(r - m_f)) for r in (2.0, -1.0)) / 2 + sum(nll(f - m_r) for f in (0.5, -3.0)) / 2
    ) / 2
    assert RelativisticAverageLoss().d_loss(real, fake).item() == pytest.approx(ra_d)
    assert RelativisticAverageLoss().g_loss(fake, real).item() == pytest.approx(ra_g)
    ls_d = (
        sum((r - m_f - 1) ** 2 for r in (2.0, -1.0)) / 2
        + sum((f - m_r + 1) ** 2 for f in (0.5, -3.0)) / 2
    ) / 2
    assert RelativisticAverageLSLoss().d_loss(real, fake).item() == pytest.approx(ls_d)
    with pytest.raises(TypeError, match="needs D's logits on a real batch"):
        RelativisticLoss().g_loss(fake)
