"""Each diagnostic on a case whose value is known by hand, and the gradient alarm."""

import math
import statistics

import pytest
import torch
from torch import nn

from ganopt.diagnostics import Diagnostics, GradientAlarm, Probe, to_host
from ganopt.losses import GENERATOR_LOSSES, NonSaturatingLoss, StandardLoss, WassersteinLoss
from ganopt.models import MLPDiscriminator, MLPGenerator


class LinearD(nn.Module):
    """D(x) = w·x + b: its input gradient is w everywhere."""

    def __init__(self, w, b):
        super().__init__()
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([w]))
            self.fc.bias.fill_(b)

    def forward(self, x):
        return self.fc(x).squeeze(1)


class ConstantG(nn.Module):
    """G(z) = c for every z (weights zero, bias c), but with parameters that get gradients."""

    z_dim = 3

    def __init__(self, c):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor(c))

    def forward(self, z):
        return self.fc(z)


def measure(loss, fake_logit, shadow=(), clip=None, histograms=False):
    """Run one D and one G step's measurements on a hand-built G and D whose logit on every
    fake sample is ``fake_logit``; return the host values."""
    torch.manual_seed(0)
    w = [0.6, 0.8]  # ||w|| = 1
    D = LinearD(w, b=fake_logit)  # G(z) = 0, so D(G(z)) = b
    G = ConstantG([0.0, 0.0])
    shadows = {name: GENERATOR_LOSSES[name]() for name in shadow}
    diag = Diagnostics(G, D, loss, shadows, clip=clip, input_gradients=True)
    probe = Probe(histograms)
    real, z = torch.randn(32, 2), torch.randn(32, 3)

    fake = G(z).detach()
    out_real, out_fake = D(real), D(fake)
    d_loss = loss.d_loss(out_real, out_fake)
    d_loss.backward()
    diag.on_d_backward(probe, d_loss, real, fake, out_real, out_fake)
    diag.on_d_step(probe)

    D.requires_grad_(False)
    out_fake = D(G(z))
    g_loss = loss.g_loss(out_fake)
    diag.on_g_forward(probe, out_fake)
    g_loss.backward()
    diag.on_g_backward(probe, g_loss, out_fake)
    return to_host(probe.scalars), probe


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (StandardLoss(), 1 / (1 + math.exp(3.0))),  # D(G(z)) = sigmoid(-3)
        (NonSaturatingLoss(), 1 - 1 / (1 + math.exp(3.0))),  # 1 - D(G(z))
        (WassersteinLoss(), 1.0),
    ],
    ids=["standard", "nonsaturating", "wgan"],
)
def test_grad_signal_is_the_per_sample_factor_of_each_loss(loss, expected):
    values, _ = measure(loss, fake_logit=-3.0)
    assert values["grad_signal/G"] == pytest.approx(expected, rel=1e-5)


def test_saturated_fake_counts_samples_with_sigmoid_below_1e_3():
    assert measure(StandardLoss(), fake_logit=-8.0)[0]["D/saturated_fake"] == 1.0  # σ = 3.4e-4
    assert measure(StandardLoss(), fake_logit=-6.0)[0]["D/saturated_fake"] == 0.0  # σ = 2.5e-3
    assert "D/saturated_fake" not in measure(WassersteinLoss(), fake_logit=-8.0)[0]


def test_input_gradients_of_a_linear_d_are_its_weight_norm():
    values, _ = measure(NonSaturatingLoss(), fake_logit=0.0)
    for where in ("real", "fake", "interp"):
        assert values[f"grad_x/D/{where}"] == pytest.approx(1.0, rel=1e-6)


def test_input_gradients_in_one_pass_equal_one_pass_per_set():
    torch.manual_seed(0)
    D = MLPDiscriminator(data_shape=(2,), hidden=[16, 16])
    diagnostics = Diagnostics(MLPGenerator(2, (2,), [8]), D, NonSaturatingLoss(), seed=3)
    real, fake = torch.randn(32, 2), torch.randn(32, 2)
    together = diagnostics.input_gradient_norms(real, fake)
    diagnostics.rng.manual_seed(3)  # the same interpolates
    diagnostics._batch_coupled = True  # as with BatchNorm: one pass per set
    separately = diagnostics.input_gradient_norms(real, fake)
    assert set(together) == {"grad_x/D/real", "grad_x/D/fake", "grad_x/D/interp"}
    for name, value in together.items():
        assert value.item() == pytest.approx(separately[name].item(), rel=1e-5)


def test_shadow_ratio_between_standard_and_nonsaturating_is_exp_of_the_logit():
    """Same batch, same Jacobian: the norms differ by σ(a) / (1 − σ(a)) = e^a."""
    values, _ = measure(WassersteinLoss(), fake_logit=-4.0, shadow=["standard", "nonsaturating"])
    ratio = values["grad_norm_shadow/G/standard"] / values["grad_norm_shadow/G/nonsaturating"]
    assert ratio == pytest.approx(math.exp(-4.0), rel=1e-4)


@pytest.mark.parametrize("shadow_name", ["standard", "wgan"])
def test_shadow_norm_equals_the_gradient_that_loss_would_really_give(shadow_name):
    torch.manual_seed(1)
    G = MLPGenerator(2, (2,), [16, 16])
    D = MLPDiscriminator((2,), [16, 16])
    shadow_loss = GENERATOR_LOSSES[shadow_name]()
    diag = Diagnostics(G, D, NonSaturatingLoss(), {shadow_name: shadow_loss})
    z = torch.randn(64, 2)
    D.requires_grad_(False)
    probe = Probe()
    diag.on_g_forward(probe, D(G(z)))
    shadow = to_host(probe.scalars)[f"grad_norm_shadow/G/{shadow_name}"]

    grads = torch.autograd.grad(shadow_loss.g_loss(D(G(z))), list(G.parameters()))
    assert shadow == pytest.approx(torch.cat([g.flatten() for g in grads]).norm().item(), rel=1e-5)


@pytest.mark.parametrize(
    ("w", "b", "share"),
    [([0.01, 0.0], -0.00995, 2 / 3), ([0.005, -0.0098], 0.0, 0.0), ([-0.01, 0.01], 0.01, 1.0)],
)
def test_clip_at_bound_is_the_share_of_weights_within_one_percent_of_c(w, b, share):
    diag = Diagnostics(ConstantG([0.0, 0.0]), LinearD(w, b), WassersteinLoss(), clip=0.01)
    probe = Probe()
    diag.on_d_step(probe)
    assert to_host(probe.scalars)["clip/at_bound"] == pytest.approx(share)


def test_clip_at_bound_is_absent_without_clipping():
    assert "clip/at_bound" not in measure(WassersteinLoss(), fake_logit=0.0)[0]


def test_histograms_only_on_histogram_probes():
    _, plain = measure(StandardLoss(), fake_logit=0.0)
    assert plain.hists == {}
    _, hist = measure(StandardLoss(), fake_logit=0.0, histograms=True)
    assert {
        "hist/D/out_real",
        "hist/D/out_fake",
        "hist/grad/D/fc.weight",
        "hist/grad/G/fc.bias",
    } <= set(hist.hists)


def test_alarm_fires_once_when_the_gradient_vanishes():
    alarm = GradientAlarm(vanishing_ratio=1e-3)
    assert alarm.update(1, 0.5) == []
    assert alarm.update(2, 2.0) == []
    assert alarm.update(3, 0.01) == []  # 5e-3 of the maximum: not yet
    messages = alarm.update(4, 1e-3)  # 5e-4 of the maximum
    assert len(messages) == 1
    assert "vanishing generator gradient at step 4" in messages[0]
    assert alarm.update(5, 1e-6) == []  # once
    assert alarm.metrics() == {"vanishing_step": 4, "exploding_step": None}


def test_alarm_fires_when_the_gradient_explodes_above_the_running_median():
    alarm = GradientAlarm(exploding_ratio=1e3)
    for step, value in enumerate([1.0, 2.0, 1.0, 1500.0], start=1):
        messages = alarm.update(step, value)
    assert len(messages) == 1
    assert "exploding generator gradient at step 4" in messages[0]
    assert alarm.metrics() == {"vanishing_step": None, "exploding_step": 4}


def test_alarm_stays_quiet_on_a_healthy_noisy_run():
    alarm = GradientAlarm()
    torch.manual_seed(0)
    for step, value in enumerate(torch.rand(200).mul(10).add(0.1).tolist(), start=1):
        assert alarm.update(step, value) == []
    assert alarm.update(201, math.nan) == []
    assert alarm.metrics() == {"vanishing_step": None, "exploding_step": None}


@pytest.mark.parametrize("seed", range(5))
def test_alarm_fires_where_a_full_history_rescan_would(seed):
    """The alarm keeps its history sorted; it must agree with recomputing max and median."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.exp(torch.randn(300, generator=gen) * 4).tolist()  # spans orders of magnitude
    alarm = GradientAlarm(vanishing_ratio=1e-3, exploding_ratio=1e2)
    expected: dict[str, int | None] = {"vanishing_step": None, "exploding_step": None}
    for step, value in enumerate(values, start=1):
        earlier = values[: step - 1]
        if expected["vanishing_step"] is None and value < 1e-3 * max(values[:step]):
            expected["vanishing_step"] = step
        explodes = bool(earlier) and value > 1e2 * statistics.median(earlier)
        if expected["exploding_step"] is None and explodes:
            expected["exploding_step"] = step
        alarm.update(step, value)
    assert alarm.metrics() == expected
    assert None not in expected.values()  # the sequence exercises both alarms
