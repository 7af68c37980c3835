"""GAN losses, written on the discriminator's raw output (the logit ``a``).

Every loss is an object with one job: the D loss and the G loss of a batch (means over
samples), and their analytic derivatives with respect to D's output. The derivatives are
per-sample: ``g_grad(a)[i]`` is dℓ/da_i for the per-sample loss ℓ, i.e. N times the
derivative of the batch mean. ``tests/test_losses.py`` checks each one against autograd.

For sigmoid losses D(x) = sigmoid(a), and every log-probability is a softplus:
``log sigmoid(a) = -softplus(-a)`` and ``log(1 - sigmoid(a)) = -softplus(a)``. Computing
``log(sigmoid(a))`` directly returns -inf once sigmoid underflows (a < -88 in float32).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor


class GANLoss(ABC):
    """Interface: D and G losses on D's logits, and their derivatives w.r.t. the logits."""

    #: the config name (``loss=<name>``)
    name: str
    #: D's output is a logit of P(real), so ``sigmoid(a)`` is meaningful.
    uses_sigmoid: bool = True
    #: mean D(real) - mean D(fake) estimates a Wasserstein distance (critic losses).
    estimates_wasserstein: bool = False

    @abstractmethod
    def d_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """Loss minimized by D, given its logits on a real and a generated batch."""

    @abstractmethod
    def g_loss(self, fake: Tensor) -> Tensor:
        """Loss minimized by G, given D's logits on a generated batch."""

    @abstractmethod
    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample dℓ_D/da on real and on fake samples."""

    @abstractmethod
    def g_grad(self, fake: Tensor) -> Tensor:
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

    def g_loss(self, fake: Tensor) -> Tensor:
        return -F.softplus(fake).mean()

    def g_grad(self, fake: Tensor) -> Tensor:
        return -torch.sigmoid(fake)


class NonSaturatingLoss(_SigmoidCrossEntropyD):
    """The non-saturating heuristic (Goodfellow et al. 2014, §3): G minimizes -E[log D(G(z))].

    ℓ_G = softplus(-a), so dℓ_G/da = -sigmoid(-a) = -(1 - D(G(z))): close to -1 exactly when
    D wins. Many frameworks call this loss "minimax"; it is not.
    """

    name = "nonsaturating"

    def g_loss(self, fake: Tensor) -> Tensor:
        return F.softplus(-fake).mean()

    def g_grad(self, fake: Tensor) -> Tensor:
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

    def g_loss(self, fake: Tensor) -> Tensor:
        return -fake.mean()

    def d_grad(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        return -torch.ones_like(real), torch.ones_like(fake)

    def g_grad(self, fake: Tensor) -> Tensor:
        return -torch.ones_like(fake)


#: Every generator loss by config name: the alternatives a run's shadow diagnostics compare.
GENERATOR_LOSSES: dict[str, type[GANLoss]] = {
    cls.name: cls for cls in (StandardLoss, NonSaturatingLoss, WassersteinLoss)
}
