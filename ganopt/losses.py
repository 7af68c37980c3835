"""GAN losses, written on the discriminator's raw output (the logit ``a``).

Every loss is an object with one job: the D loss and the G loss of a batch (means over
samples), and their analytic derivatives with respect to D's output. The derivatives are
per-sample: ``g_grad(a)[i]`` is N times the derivative of the batch mean with respect to a_i
(for most losses, dℓ/da_i of the per-sample loss ℓ). Relativistic losses also read D's logits
on real samples in G's loss: ``g_loss(fake, real)``; the others ignore ``real``.
``tests/test_losses.py`` checks each one against autograd.

For sigmoid losses D(x) = sigmoid(a), and every log-probability is a softplus:
``log sigmoid(a) = -softplus(-a)`` and ``log(1 - sigmoid(a)) = -softplus(a)``. Computing
``log(sigmoid(a))`` directly returns -inf once sigmoid underflows (a < -88 in float32).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from ganopt.regularizers import Regularizer, wgan_gp


class GANLoss(ABC):
    """Interface: D and G losses on D's logits, and their derivatives w.r.t. the logits."""

    #: the config name (``loss=<name>``)
    name: str
    #: D's output is a logit of P(real), so ``sigmoid(a)`` is meaningful.
    uses_sigmoid: bool = True
    #: mean D(real) - mean D(fake) estimates a Wasserstein distance (critic losses).
    estimates_wasserstein: bool = False
    #: a term the loss itself adds to D's objective (WGAN-GP's penalty)
    regularizer: Regularizer | None = None
    #: G's loss also reads D's logits on real samples (relativistic losses)
    uses_real_in_g: bool = False

    @abstractmethod
    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Loss minimized by D, given its logits on a real and a generated batch."""

    @abstractmethod
    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        """Loss minimized by G, given D's logits on a generated batch (and, where
        ``uses_real_in_g``, on a real one)."""

    @abstractmethod
    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample dℓ_D/da on real and on fake samples."""

    @abstractmethod
    def g_grad(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        """Per-sample dℓ_G/da_i on fake samples: the factor through which G learns."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _SigmoidCrossEntropyD(GANLoss):
    """D of the original GAN: maximize E[log D(x)] + E[log(1 - D(G(z)))].

    As a loss to minimize: E[softplus(-a_real)] + E[softplus(a_fake)], whose derivatives are
    -sigmoid(-a_real) = sigmoid(a_real) - 1 and sigmoid(a_fake).
    """

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return -torch.sigmoid(-real), torch.sigmoid(fake)


class StandardLoss(_SigmoidCrossEntropyD):
    """The true minimax GAN (Goodfellow et al. 2014): G minimizes E[log(1 - D(G(z)))].

    ℓ_G = -softplus(a), so dℓ_G/da = -sigmoid(a) = -D(G(z)): when D confidently rejects the
    fakes (a → -∞) the generator's gradient vanishes. This is the *saturating* loss.
    """

    name = "standard"

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -F.softplus(fake).mean()

    def g_grad(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -torch.sigmoid(fake)


class NonSaturatingLoss(_SigmoidCrossEntropyD):
    """The non-saturating heuristic (Goodfellow et al. 2014, §3): G minimizes -E[log D(G(z))].

    ℓ_G = softplus(-a), so dℓ_G/da = -sigmoid(-a) = -(1 - D(G(z))): close to -1 exactly when
    D wins. Many frameworks call this loss "minimax"; it is not.
    """

    name = "nonsaturating"

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return F.softplus(-fake).mean()

    def g_grad(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -torch.sigmoid(-fake)


class WassersteinLoss(GANLoss):
    """WGAN (Arjovsky et al. 2017): the critic's raw output, no sigmoid.

    D minimizes E[a_fake] - E[a_real]; G minimizes -E[a_fake]. The derivatives are the
    constants -1 (real), +1 (fake) for D and -1 for G: the loss never saturates, and the
    critic's Lipschitz constraint (weight clipping, a gradient penalty) carries the burden.
    """

    name = "wgan"
    uses_sigmoid = False
    estimates_wasserstein = True

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -fake.mean()

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return -torch.ones_like(real), torch.ones_like(fake)

    def g_grad(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return -torch.ones_like(fake)


class WGANGPLoss(WassersteinLoss):
    """WGAN-GP (Gulrajani et al. 2017): the WGAN critic loss plus λ E[(||∇D(x̂)|| - 1)²] on
    random interpolates x̂, instead of weight clipping. The penalty is the loss's own
    ``regularizer``; the derivatives w.r.t. the logits are WGAN's."""

    name = "wgan_gp"

    def __init__(self, lam: float = 10.0) -> None:
        self.regularizer = wgan_gp(lam)

    def __repr__(self) -> str:
        return f"WGANGPLoss(lam={self.regularizer.weight:g})"


class HingeLoss(WassersteinLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimizes E[relu(1 - a_real)] +
    E[relu(1 + a_fake)], G minimizes -E[a_fake] as in WGAN.

    D's derivatives are -1 on real samples with a < 1 and +1 on fakes with a > -1, else 0: a
    sample D already classifies with margin gives it no gradient.
    """

    name = "hinge"
    estimates_wasserstein = False

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return -(real < 1).to(real.dtype), (fake > -1).to(fake.dtype)


class LeastSquaresLoss(GANLoss):
    """LSGAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real), c=1: D minimizes
    ½E[(a_real - 1)²] + ½E[a_fake²], G minimizes ½E[(a_fake - 1)²], on D's raw output.

    dℓ_G/da = a - 1: the generator is pulled toward the decision boundary in proportion to its
    distance from it, even for samples D classifies correctly.
    """

    name = "lsgan"
    uses_sigmoid = False

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (real - 1).pow(2).mean() + 0.5 * fake.pow(2).mean()

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return 0.5 * (fake - 1).pow(2).mean()

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return real - 1, fake.clone()

    def g_grad(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return fake - 1


class _Relativistic(GANLoss):
    """Relativistic GANs (Jolicoeur-Martineau 2019): D judges whether a real sample is more
    realistic than a fake one, so G's loss reads D's logits on real data too. G's loss is D's
    with real and fake swapped, and so is its derivative."""

    uses_sigmoid = False  # sigmoid(a) alone is no probability of "real" here
    uses_real_in_g = True

    def g_loss(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return self.d_loss(fake, _needs(real))

    def g_grad(self, fake: Tensor, real: Tensor | None = None) -> Tensor:
        return self.d_grad(fake, _needs(real))[0]


def _softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) without F.softplus's linear cut-off at x > 20, whose gradient is 1 where
    sigmoid(x) is not (in float64): logit differences reach twice the logits' range."""
    return torch.logaddexp(torch.zeros_like(x), x)


def _needs(real: Tensor | None) -> Tensor:
    if real is None:
        raise TypeError("a relativistic G loss needs D's logits on a real batch")
    return real


class RelativisticLoss(_Relativistic):
    """RSGAN: real and fake samples in pairs; D minimizes E[softplus(a_fake - a_real)]
    (= -E[log sigmoid(a_real - a_fake)]). Per pair, with s = sigmoid(a_fake - a_real):
    dℓ_D/da_real = -s, dℓ_D/da_fake = s."""

    name = "rsgan"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return _softplus(fake - real).mean()

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        s = torch.sigmoid(fake - real)
        return -s, s


class RelativisticAverageLoss(_Relativistic):
    """RaSGAN, as in the paper's code: each sample against the other set's mean logit m_r,
    m_f; D minimizes ½(E[softplus(m_f - a_real)] + E[softplus(a_fake - m_r)]). The means carry
    gradient too, so every sample's derivative has a term from the other set:
    dℓ_D/da_real,j = -½(sigmoid(m_f - a_real,j) + mean_i sigmoid(a_fake,i - m_r)),
    dℓ_D/da_fake,j = ½(sigmoid(a_fake,j - m_r) + mean_i sigmoid(m_f - a_real,i))."""

    name = "rasgan"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (_softplus(fake.mean() - real).mean() + _softplus(fake - real.mean()).mean())

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        real_below = torch.sigmoid(fake.mean() - real)
        fake_above = torch.sigmoid(fake - real.mean())
        return -0.5 * (real_below + fake_above.mean()), 0.5 * (fake_above + real_below.mean())


class RelativisticAverageLSLoss(_Relativistic):
    """RaLSGAN, as in the paper's code: D minimizes
    ½(E[(a_real - m_f - 1)²] + E[(a_fake - m_r + 1)²]). Per sample, with u = a_real - m_f - 1
    and v = a_fake - m_r + 1: dℓ_D/da_real,j = u_j - mean(v), dℓ_D/da_fake,j = v_j - mean(u)."""

    name = "ralsgan"

    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        u, v = real - fake.mean() - 1, fake - real.mean() + 1
        return 0.5 * (u.pow(2).mean() + v.pow(2).mean())

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        u, v = real - fake.mean() - 1, fake - real.mean() + 1
        return u - v.mean(), v - u.mean()


#: Every distinct generator loss by config name: the alternatives a run's shadow diagnostics
#: compare (hinge and wgan_gp train G exactly as wgan does).
GENERATOR_LOSSES: dict[str, type[GANLoss]] = {
    cls.name: cls
    for cls in (
        StandardLoss,
        NonSaturatingLoss,
        WassersteinLoss,
        LeastSquaresLoss,
        RelativisticLoss,
        RelativisticAverageLoss,
        RelativisticAverageLSLoss,
    )
}
