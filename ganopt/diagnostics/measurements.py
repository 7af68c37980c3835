"""What a log step measures about G and D, written into a Probe on the device.

The Trainer calls these hooks at four points of its D and G steps, and only on log steps.
Randomness (interpolates) comes from a generator of its own, seeded per log step, so measuring
never moves the training RNG: a run's trajectory does not depend on how often it is logged.
With a worker (ganopt/diagnostics/beside.py), D's input gradients and the shadow losses'
passes through G run beside training, on replicas of the networks, and their values come back
through the worker instead of the probe.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganopt.diagnostics.beside import BesideWorker, Replica, Values
from ganopt.diagnostics.stats import Probe, grad_norms
from ganopt.losses import GANLoss
from ganopt.tags import (
    GRAD_NORM,
    GRAD_SIGNAL_G,
    LOSS_D,
    LOSS_D_PENALTY,
    LOSS_D_TOTAL,
    LOSS_G,
    LOSS_G_PENALTY,
    UPDATE_RATIO,
    WASSERSTEIN,
)

#: sigmoid(a) < 1e-3  ⟺  a < log(1e-3 / (1 - 1e-3)): a fake sample D rejects with certainty
SATURATED_LOGIT = math.log(1e-3 / (1 - 1e-3))


@contextlib.contextmanager
def buffers_preserved(module: nn.Module) -> Iterator[None]:
    """Forward passes made only to measure leave ``module``'s buffers as they were: spectral
    norm's power iteration and BatchNorm's running statistics advance on every forward in
    training mode, and logging more often must not change what training does."""
    saved = [b.detach().clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved, strict=True):
                buffer.copy_(value)


def _named_trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


class Diagnostics:
    """Gradient norms per layer, D's outputs and saturation, the gradient signal reaching G,
    what the other generator losses would give (shadows), D's input gradients, and how many
    clipped weights sit at the bound."""

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        loss: GANLoss,
        shadow_losses: Mapping[str, GANLoss] | None = None,
        clip: float | None = None,
        input_gradients: bool = True,
        seed: int = 0,
        beside: BesideWorker | None = None,
    ) -> None:
        self.loss = loss
        self.D = D
        self.g_params = _named_trainable(G)
        self.d_params = _named_trainable(D)
        self.shadow_losses = dict(shadow_losses or {})
        self.clip = clip
        self.input_gradients = input_gradients
        self._batch_coupled = any(isinstance(m, _BatchNorm) for m in D.modules())
        device = self.g_params[0][1].device
        self.seed = seed
        self.rng = torch.Generator(device=device).manual_seed(seed)
        self._before_step: dict[str, list[Tensor]] = {}
        self._last_real: Tensor | None = None
        self.beside = beside
        if beside is not None:
            self._replicas = {"G": Replica(G, beside), "D": Replica(D, beside)}
        self._step = 0

    def start(self, step: int) -> None:
        """Seed the diagnostics' own generator from (seed, step), so what a log step measures
        depends on nothing but the step: not on which steps were logged before it, nor on
        where a run was split by a resume."""
        self.rng.manual_seed((self.seed + step * 0x9E3779B97F4A7C15) % 2**63)
        self._step = step

    # ------------------------------------------------------------------ either step
    def before_step(self, network: str) -> None:
        """Keep a copy of ``network``'s weights (log steps only) to measure its update; one
        taken earlier in the step (before extragradient's look-ahead) is kept."""
        if network not in self._before_step:
            self._before_step[network] = [p.detach().clone() for _, p in self._params(network)]

    def after_step(self, probe: Probe, network: str) -> None:
        """``update_ratio/<network>/<param>`` = ‖Δθ‖ / ‖θ‖ of the step just taken (for D, after
        clipping: what the weights really did), per parameter and in total. ‖θ‖ is the larger of
        the norms before and after the step, so a parameter that starts at 0 reads 1, not ∞."""
        named = self._params(network)
        before = self._before_step.pop(network)
        after = [p.detach() for _, p in named]
        delta = torch.stack(torch._foreach_norm(torch._foreach_sub(after, before)))
        size = torch.stack(
            torch._foreach_maximum(torch._foreach_norm(before), torch._foreach_norm(after))
        )
        prefix = f"{UPDATE_RATIO}/{network}"
        ratios = (delta / size.clamp_min(1e-30)).unbind()  # one division for every parameter
        for (name, _), ratio in zip(named, ratios, strict=True):
            probe.scalars[f"{prefix}/{name}"] = ratio
        total = torch.linalg.vector_norm(delta) / torch.linalg.vector_norm(size).clamp_min(1e-30)
        probe.scalars[f"{prefix}/total"] = total

    def _params(self, network: str) -> list[tuple[str, nn.Parameter]]:
        return self.g_params if network == "G" else self.d_params

    # ------------------------------------------------------------------ D step
    def on_d_backward(
        self,
        probe: Probe,
        loss: Tensor,
        real: Tensor,
        fake: Tensor,
        out_real: Tensor,
        out_fake: Tensor,
        penalty: Tensor | None = None,
    ) -> None:
        """After D's backward, before its step: its loss (and penalty), outputs, gradients."""
        out_real, out_fake = out_real.detach(), out_fake.detach()
        self._last_real = real  # relativistic shadows compare fakes with it in the G step
        s = probe.scalars
        s[LOSS_D] = loss.detach()
        if penalty is not None:  # D's gradient is that of their sum: loss/D_total
            s[LOSS_D_PENALTY] = penalty.detach()
            s[LOSS_D_TOTAL] = loss.detach() + penalty.detach()
        s["D/out_real"], s["D/out_fake"] = out_real.mean(), out_fake.mean()
        if self.loss.uses_sigmoid:
            s["D/prob_real"] = torch.sigmoid(out_real).mean()
            s["D/prob_fake"] = torch.sigmoid(out_fake).mean()
        if self.loss.estimates_wasserstein:
            s[WASSERSTEIN] = out_real.mean() - out_fake.mean()
        s |= grad_norms(f"{GRAD_NORM}/D", self.d_params)
        if self.input_gradients:
            eps = self._interpolation_weights(real)
            if self.beside is None:
                with buffers_preserved(self.D):
                    s |= input_gradient_norms(self.D, real, fake, eps, self._batch_coupled)
            else:
                self._measure_beside(
                    "D",
                    input_gradient_norms,
                    real.detach().clone(),
                    fake.detach().clone(),
                    eps,
                    self._batch_coupled,
                )
        if probe.histograms:
            probe.hists["hist/D/out_real"] = out_real
            probe.hists["hist/D/out_fake"] = out_fake
            probe.hists |= _grad_copies("hist/grad/D", self.d_params)

    def on_d_step(self, probe: Probe) -> None:
        """After D's step and clipping: the share of D's weights held at the bound."""
        if self.clip is None:
            return
        params = [p.detach() for _, p in self.d_params]
        at_bound = sum((p.abs() >= 0.99 * self.clip).sum() for p in params)
        probe.scalars["clip/at_bound"] = at_bound / sum(p.numel() for p in params)

    def _interpolation_weights(self, real: Tensor) -> Tensor:
        """One weight per sample for the interpolates between real and fake, from the
        diagnostics' own generator."""
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        return torch.rand(shape, device=real.device, generator=self.rng)

    def _measure_beside(self, network: str, measure: Callable[..., Values], *args: object) -> None:
        """``measure(replica of network, *args)`` on the worker: the replica refreshed now."""
        replica = self._replicas[network]
        module = replica.refresh()
        replica.read_by(self.beside.submit(self._step, lambda: measure(module, *args)))

    # ------------------------------------------------------------------ G step
    def on_g_forward(
        self,
        probe: Probe,
        z: Tensor,
        fake: Tensor,
        out_fake: Tensor,
        out_real: Tensor | None = None,
    ) -> None:
        """Before G's backward, while the graph is alive: the total gradient norm each other
        generator loss would give on this very batch of fakes ``fake`` = G(z), whose D logits
        are ``out_fake``.

        By the chain rule ∇θ L = Σ_i (1/N) dℓ/da_i · ∇θ a_i, so one vector-Jacobian product
        with the loss's analytic dℓ/da gives it, without building another loss graph. Where D
        scores each sample on its own (no BatchNorm), ∇θ a_i = (∂x_i/∂θ)ᵀ ∇x D(x_i): one
        backward through D gives every ∇x D(x_i), and each loss then costs a backward through
        G alone (beside training with a worker: through a replica of G, which makes ``fake``
        again from ``z``). A relativistic loss also needs D's logits on real data: those of the
        G step where its loss read them, else D's (current) logits on the log step's real batch.
        """
        if not self.shadow_losses:
            return
        logits = out_fake.detach()
        relativistic = any(other.uses_real_in_g for other in self.shadow_losses.values())
        real_logits = self._real_logits(out_real) if relativistic else None
        if self._batch_coupled:  # each logit depends on the whole batch: back through D too
            params = [p for _, p in self.g_params]
            signal = torch.ones_like(logits)
            probe.scalars |= shadow_norms(
                self.shadow_losses, out_fake, signal, logits, real_logits, params
            )
            return
        (signal,) = torch.autograd.grad(out_fake.sum(), fake, retain_graph=True)
        if self.beside is None:
            params = [p for _, p in self.g_params]
            probe.scalars |= shadow_norms(
                self.shadow_losses, fake, signal, logits, real_logits, params
            )
            return
        names = [name for name, _ in self.g_params]
        shadows = self.shadow_losses

        def through_replica(G: nn.Module, z: Tensor) -> Values:
            named = dict(G.named_parameters())
            params = [named[name] for name in names]
            return shadow_norms(shadows, G(z), signal, logits, real_logits, params)

        self._measure_beside("G", through_replica, z.detach().clone())

    def _real_logits(self, out_real: Tensor | None) -> Tensor | None:
        """``out_real``, else D's logits on the log step's real batch from a forward that
        moves copies of D's buffers, never D's own: the G step's graph holds BatchNorm's
        running statistics, and an update in place (or its undoing) would break its backward."""
        if out_real is not None:
            return out_real.detach()
        if self._last_real is None:
            return None
        buffers = {name: b.clone() for name, b in self.D.named_buffers()}
        with torch.no_grad():
            return torch.func.functional_call(self.D, buffers, (self._last_real,))

    def on_g_backward(
        self,
        probe: Probe,
        loss: Tensor,
        out_fake: Tensor,
        out_real: Tensor | None = None,
        penalty: Tensor | None = None,
    ) -> None:
        """After G's backward, before its step: its loss (and penalty), gradients and gradient
        signal."""
        out_fake = out_fake.detach()
        real = None if out_real is None else out_real.detach()
        s = probe.scalars
        s[LOSS_G] = loss.detach()
        if penalty is not None:
            s[LOSS_G_PENALTY] = penalty.detach()
        s[GRAD_SIGNAL_G] = self.loss.g_grad(out_fake, real).abs().mean()
        if self.loss.uses_sigmoid:
            s["D/saturated_fake"] = (out_fake < SATURATED_LOGIT).float().mean()
        s |= grad_norms(f"{GRAD_NORM}/G", self.g_params)
        if probe.histograms:
            probe.hists |= _grad_copies("hist/grad/G", self.g_params)


def _grad_copies(prefix: str, named_params: list[tuple[str, nn.Parameter]]) -> dict[str, Tensor]:
    """Gradients as they are now (the optimizer's next zero_grad would drop them)."""
    return {f"{prefix}/{n}": p.grad.detach().clone() for n, p in named_params if p.grad is not None}


def input_gradient_norms(
    D: nn.Module, real: Tensor, fake: Tensor, eps: Tensor, batch_coupled: bool
) -> Values:
    """Mean over samples of ||∇_x D(x)|| on real, fake and the interpolates eps·real +
    (1 − eps)·fake: one pass over the three sets together, or one each where BatchNorm
    couples a batch's samples. It moves D's buffers (BatchNorm's statistics, spectral norm's
    vectors): the caller restores or owns them."""
    points = {"real": real, "fake": fake, "interp": eps * real + (1 - eps) * fake}
    if batch_coupled:
        grads = [_input_gradient(D, x) for x in points.values()]
    else:
        grads = _input_gradient(D, torch.cat(list(points.values()))).split(len(real))
    return {
        f"grad_x/D/{name}": grad.flatten(1).norm(dim=1).mean()
        for name, grad in zip(points, grads, strict=True)
    }


def _input_gradient(D: nn.Module, x: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    return grad


def shadow_norms(
    losses: Mapping[str, GANLoss],
    output: Tensor,
    signal: Tensor,
    logits: Tensor,
    real_logits: Tensor | None,
    params: list[Tensor],
) -> Values:
    """``grad_norm_shadow/G/<name>``: the norm of Σ_i (1/N) dℓ/da_i · signal_i · ∂output_i/∂θ
    for each loss ℓ, a vector-Jacobian product through ``output``'s graph (which it keeps)."""
    norms = {}
    for name, other in losses.items():
        real = real_logits if other.uses_real_in_g else None
        weights = other.g_grad(logits, real) / logits.shape[0]
        weights = weights.reshape(len(weights), *[1] * (signal.dim() - 1)) * signal
        # (x·w).sum()'s gradient is grad_outputs=w's, bit for bit, without the import of
        # torch's symbolic shapes that a tensor grad_outputs costs (docs/performance.md)
        grads = torch.autograd.grad((output * weights).sum(), params, retain_graph=True)
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(grads))))
        norms[f"grad_norm_shadow/G/{name}"] = total
    return norms
