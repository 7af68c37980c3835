"""Each diagnostic on a case whose value is known by hand, and the gradient alarm."""

import contextlib
import copy
import math
import statistics

import numpy as np
import pytest
import torch
from torch import nn

from ganopt.diagnostics import Diagnostics, GradientAlarm, Probe, to_host
from ganopt.diagnostics.flow import GradientFlow
from ganopt.diagnostics.measurements import input_gradient_norms
from ganopt.diagnostics.memorization import Memorization
from ganopt.diagnostics.report import collecting
from ganopt.losses import GENERATOR_LOSSES, NonSaturatingLoss, StandardLoss, WassersteinLoss
from ganopt.models import MLPDiscriminator, MLPGenerator
from ganopt.rendering import FlowPicture, gradient_flow_figure
from ganopt.schedule import LinearDecay
from ganopt.tags import D_ADA_RT, D_OUT_HELDOUT, D_OUT_TRAIN, D_OVERFIT_GAP


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
    fake = G(z)
    out_fake = D(fake)
    g_loss = loss.g_loss(out_fake)
    diag.on_g_forward(probe, z, fake, out_fake)
    g_loss.backward()
    diag.on_g_backward(probe, g_loss, out_fake)
    return to_host(probe.scalars), probe


def test_relativistic_shadows_of_a_batchnorm_d_leave_the_g_steps_graph_whole():
    """Training with a loss that reads no real logits, the relativistic shadows take D's on
    the D step's real batch. With BatchNorm in D, that forward must not touch D's running
    statistics, which the G step's graph holds: its backward then failed ("modified by an
    inplace operation"). The shadow is autograd's norm with D's logits on that batch."""
    torch.manual_seed(2)
    G, D = MLPGenerator(2, (2,), [16, 16]), batch_norm_d()
    shadow_loss = GENERATOR_LOSSES["rsgan"]()
    diag = Diagnostics(G, D, NonSaturatingLoss(), {"rsgan": shadow_loss}, input_gradients=False)
    real, z = torch.randn(64, 2), torch.randn(64, 2)
    probe = Probe()
    fake = G(z).detach()
    out_real, out_fake = D(real), D(fake)
    d_loss = NonSaturatingLoss().d_loss(out_real, out_fake)
    d_loss.backward()
    diag.on_d_backward(probe, d_loss, real, fake, out_real, out_fake)
    D.requires_grad_(False)
    reference_real = copy.deepcopy(D)(real).detach()
    fake = G(z)
    out_fake = D(fake)
    g_loss = NonSaturatingLoss().g_loss(out_fake)
    diag.on_g_forward(probe, z, fake, out_fake)
    g_loss.backward()  # the graph is whole
    shadow = to_host(probe.scalars)["grad_norm_shadow/G/rsgan"]
    grads = torch.autograd.grad(shadow_loss.g_loss(D(G(z)), reference_real), list(G.parameters()))
    assert shadow == pytest.approx(torch.cat([g.flatten() for g in grads]).norm().item(), rel=1e-5)


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
    real, fake, eps = torch.randn(32, 2), torch.randn(32, 2), torch.rand(32, 1)
    together = input_gradient_norms(D, real, fake, eps, batch_coupled=False)
    separately = input_gradient_norms(D, real, fake, eps, batch_coupled=True)  # as BatchNorm's
    assert set(together) == {"grad_x/D/real", "grad_x/D/fake", "grad_x/D/interp"}
    for name, value in together.items():
        assert value.item() == pytest.approx(separately[name].item(), rel=1e-5)


def test_shadow_ratio_between_standard_and_nonsaturating_is_exp_of_the_logit():
    """Same batch, same Jacobian: the norms differ by σ(a) / (1 − σ(a)) = e^a."""
    values, _ = measure(WassersteinLoss(), fake_logit=-4.0, shadow=["standard", "nonsaturating"])
    ratio = values["grad_norm_shadow/G/standard"] / values["grad_norm_shadow/G/nonsaturating"]
    assert ratio == pytest.approx(math.exp(-4.0), rel=1e-4)


def batch_norm_d() -> nn.Module:
    """A D whose logit for one sample depends on the whole batch (BatchNorm in training mode)."""
    return nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.2), nn.Linear(16, 1))


@pytest.mark.parametrize("shadow_name", ["standard", "wgan", "rsgan"])
@pytest.mark.parametrize("coupled", [False, True], ids=["per_sample_d", "batchnorm_d"])
def test_shadow_norm_equals_the_gradient_that_loss_would_really_give(shadow_name, coupled):
    """Through G alone from D's input gradients (D scores each sample on its own), or back
    through D (BatchNorm couples the batch): either way the norm of autograd's gradient of that
    loss, relativistic ones with D's logits on the real batch."""
    torch.manual_seed(1)
    G = MLPGenerator(2, (2,), [16, 16])
    D = batch_norm_d() if coupled else MLPDiscriminator((2,), [16, 16])
    shadow_loss = GENERATOR_LOSSES[shadow_name]()
    diag = Diagnostics(G, D, NonSaturatingLoss(), {shadow_name: shadow_loss})
    z, real = torch.randn(64, 2), torch.randn(64, 2)
    D.requires_grad_(False)
    probe = Probe()
    out_real = D(real).detach()
    fake = G(z)
    diag.on_g_forward(probe, z, fake, D(fake), out_real)
    shadow = to_host(probe.scalars)[f"grad_norm_shadow/G/{shadow_name}"]

    relativistic = out_real if shadow_loss.uses_real_in_g else None
    grads = torch.autograd.grad(shadow_loss.g_loss(D(G(z)), relativistic), list(G.parameters()))
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


def test_update_ratio_is_the_step_size_relative_to_the_weights():
    G = ConstantG([0.0, 0.0])  # weight 2x3 zeros, bias (0, 0)
    D = LinearD([3.0, 4.0], b=1.0)
    diag = Diagnostics(G, D, NonSaturatingLoss())
    probe = Probe()
    diag.before_step("D")
    with torch.no_grad():
        D.fc.weight.mul_(1.2)  # (3, 4) -> (3.6, 4.8): ||dw|| = 1, max(||w||) = 6
        D.fc.bias.add_(-0.5)  # 1 -> 0.5: ||db|| = 0.5, max(||b||) = 1
    diag.after_step(probe, "D")
    diag.before_step("G")
    with torch.no_grad():
        G.fc.bias.fill_(0.1)  # a parameter that starts at 0 reads 1, not inf
    diag.after_step(probe, "G")
    values = to_host(probe.scalars)
    assert values["update_ratio/D/fc.weight"] == pytest.approx(1 / 6)
    assert values["update_ratio/D/fc.bias"] == pytest.approx(0.5)
    assert values["update_ratio/D/total"] == pytest.approx(math.hypot(1, 0.5) / math.hypot(6, 1))
    assert values["update_ratio/G/fc.bias"] == pytest.approx(1.0)
    assert values["update_ratio/G/fc.weight"] == 0.0  # zero before and after: 0, not NaN
    assert values["update_ratio/G/total"] == pytest.approx(1.0)


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


def g_norm(value):
    return {"grad_norm/G/total": value}


NO_ALARM = {
    "vanishing_step": None,
    "exploding_step": None,
    "stalled_step": None,
    "exploding_network": None,
}


def test_alarm_fires_once_when_the_gradient_vanishes():
    alarm = GradientAlarm(vanishing_ratio=1e-3)
    assert alarm.update(1, g_norm(0.5)) == []
    assert alarm.update(2, g_norm(2.0)) == []
    assert alarm.update(3, g_norm(0.01)) == []  # 5e-3 of the maximum: not yet
    messages = alarm.update(4, g_norm(1e-3))  # 5e-4 of the maximum
    assert len(messages) == 1
    assert "vanishing generator gradient at step 4" in messages[0]
    assert alarm.update(5, g_norm(1e-6)) == []  # once
    assert alarm.metrics() == NO_ALARM | {"vanishing_step": 4}


def test_alarm_fires_when_the_gradient_explodes_above_the_running_median():
    alarm = GradientAlarm(exploding_ratio=1e3)
    for step, value in enumerate([1.0, 2.0, 1.0, 1500.0], start=1):
        messages = alarm.update(step, g_norm(value))
    assert len(messages) == 1
    assert "exploding generator gradient at step 4" in messages[0]
    assert alarm.metrics() == NO_ALARM | {"exploding_step": 4, "exploding_network": "G"}


def test_alarm_names_the_discriminator_when_its_gradient_explodes():
    """D's norm in `loss=wgan optim=sgd` at log steps 1, 50, 100 (1.04, 2.66, 341) before NaN
    at step 103 (scripts/scalars.py RUN grad_norm/D/total): the default ratio of 100 fires at
    step 100, before the NaN."""
    alarm = GradientAlarm()
    for step, d_norm in [(1, 1.04), (50, 2.66), (100, 341.0)]:
        messages = alarm.update(step, {"grad_norm/G/total": 0.3, "grad_norm/D/total": d_norm})
    assert messages == [
        "exploding discriminator gradient at step 100: ||grad D|| = 341 is above 100 x its "
        "running median 1.85"
    ]
    assert alarm.metrics() == NO_ALARM | {"exploding_step": 100, "exploding_network": "D"}


def test_not_learning_fires_on_a_generator_whose_updates_stay_tiny_from_step_1():
    """A gradient dead from the start never falls below a fraction of its own maximum, so the
    vanishing alarm stays silent; the update-to-weight ratio is absolute."""
    alarm = GradientAlarm(stalled_ratio=1e-6, stalled_logs=3)
    dead = {"grad_norm/G/total": 1.6e-5, "update_ratio/G/total": 1.6e-8}
    assert alarm.update(1, dead) == []
    assert alarm.update(50, dead | {"update_ratio/G/total": 2e-6}) == []  # the run restarts
    assert alarm.update(100, dead) == []
    assert alarm.update(150, dead) == []
    (message,) = alarm.update(200, dead)
    assert message.startswith("generator not learning at step 200")
    assert alarm.update(250, dead) == []  # once
    assert alarm.metrics() == NO_ALARM | {"stalled_step": 200}


def test_not_learning_ignores_a_learning_rate_decayed_on_purpose():
    """optim.lr_decay takes the rates to ~0 at the end of a run: the updates shrink with the
    schedule, which is not a stall (the WGAN-SGD runs used to report stalled_step 4900)."""
    alarm = GradientAlarm(stalled_ratio=1e-6, stalled_logs=3)
    unaware = GradientAlarm(stalled_ratio=1e-6, stalled_logs=3)
    schedule = LinearDecay([], total=5000, fraction=0.5)
    for step in range(100, 5001, 100):
        factor = schedule.factor(step)
        values = {"grad_norm/G/total": 1e-3, "update_ratio/G/total": 1e-5 * factor}
        assert alarm.update(step, values, lr_factor=factor) == []
        unaware.update(step, values)
    assert alarm.metrics() == NO_ALARM
    assert unaware.metrics()["stalled_step"] == 5000  # what the schedule alone did


def test_alarm_state_round_trips():
    alarm = GradientAlarm()
    for step in range(1, 6):
        alarm.update(step, {"grad_norm/G/total": step, "update_ratio/G/total": 1e-9})
    copy = GradientAlarm()
    copy.load_state_dict(alarm.state_dict())
    assert copy.state_dict() == alarm.state_dict()
    assert copy.update(6, g_norm(1e6)) == alarm.update(6, g_norm(1e6))


def test_alarm_stays_quiet_on_a_healthy_noisy_run():
    alarm = GradientAlarm()
    torch.manual_seed(0)
    for step, value in enumerate(torch.rand(200).mul(10).add(0.1).tolist(), start=1):
        values = {"grad_norm/G/total": value, "grad_norm/D/total": value / 2}
        assert alarm.update(step, values | {"update_ratio/G/total": 1e-3}) == []
    assert alarm.update(201, g_norm(math.nan)) == []
    assert alarm.metrics() == NO_ALARM


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
        alarm.update(step, g_norm(value))
    metrics = alarm.metrics()
    assert {k: metrics[k] for k in expected} == expected
    assert None not in expected.values()  # the sequence exercises both alarms


def test_gradient_flow_keeps_weights_in_order_and_draws_the_output_on_top():
    flow = GradientFlow("G")
    flow.add(1, {"loss/G": 1.0})  # a step without per-layer norms adds nothing
    for step, scale in ((10, 1.0), (20, 0.1)):
        values = {
            "grad_norm/G/total": 9.0,
            "grad_norm/G/fc1.weight": 1e-3 * scale,
            "grad_norm/G/fc1.bias": 5.0,
            "grad_norm/G/out.weight": 1.0 * scale,
        }
        flow.add(step, values)
    assert flow.layers == ["fc1.weight", "out.weight"] and flow.steps == [10, 20]
    assert flow.matrix() == pytest.approx(np.array([[1.0, 0.1], [1e-3, 1e-4]]))
    assert gradient_flow_figure(flow.picture()).axes[0].get_title() == "gradient flow through G"


@pytest.mark.parametrize(
    "names",
    [["fc1.weight", "out.bias"], ["down2.conv.parametrizations.weight.original", "out.bias"]],
    ids=["mlp", "spectral_norm"],
)
def test_the_gradient_flow_figure_shows_every_layer_name_whole(names):
    """The figure's margins are fixed, not laid out by matplotlib: the longest layer name (a
    spectrally normalized convolution's) and the axis label still lie inside it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    picture = FlowPicture("D", names, [1, 50], np.full((len(names), 2), 1e-3))
    fig = gradient_flow_figure(picture)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # places the axis labels
    renderer = canvas.get_renderer()
    (ax, colorbar) = fig.axes
    texts = [*ax.get_yticklabels(), ax.yaxis.label, colorbar.yaxis.label]
    width = fig.get_figwidth() * fig.dpi
    assert all(
        0 <= t.get_window_extent(renderer).x0 < t.get_window_extent(renderer).x1 <= width
        for t in texts
    )


class _BatchNormD(nn.Module):
    """A D whose output depends on its batch and whose buffers move in training mode."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm2d(1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.norm(x).flatten(1).mean(1) + x.flatten(1).mean(1)


def _memorization_scalars(memorization, D, out_real, seen=lambda x: x):
    probe = Probe()
    with collecting(probe):
        memorization.report(D, out_real, seen, contextlib.nullcontext)
    return probe.scalars


def test_memorization_reports_train_heldout_gap_and_ada_rt_as_defined():
    """D/out_train and D/ada_rt from the logits of D's step, D/out_heldout from D on the
    held-out batch as D's input path shows it, D/overfit_gap their difference."""
    D = _BatchNormD()
    heldout = torch.randn(6, 1, 4, 4)
    out_real = torch.tensor([2.0, -1.0, 0.5, 3.0])

    def seen(x):  # draws from the global RNG, as DiffAugment does
        return x + torch.rand(len(x), 1, 1, 1)

    torch.manual_seed(0)
    rng = torch.get_rng_state()
    buffers = [b.clone() for b in D.buffers()]
    s = _memorization_scalars(Memorization(heldout), D, out_real, seen)
    assert torch.equal(torch.get_rng_state(), rng)  # the training RNG did not move
    assert all(torch.equal(a, b) for a, b in zip(buffers, D.buffers(), strict=True))
    assert s[D_OUT_TRAIN] == pytest.approx(4.5 / 4)
    assert s[D_ADA_RT] == pytest.approx((1 - 1 + 1 + 1) / 4)
    torch.manual_seed(0)  # the draws ``seen`` made: the next ones training would make
    expected = D(seen(heldout)).mean()
    assert s[D_OUT_HELDOUT] == pytest.approx(expected.item())
    assert s[D_OVERFIT_GAP] == pytest.approx(s[D_OUT_TRAIN] - s[D_OUT_HELDOUT])


def test_memorization_without_heldout_images_reports_only_what_d_step_gives():
    D = _BatchNormD()
    s = _memorization_scalars(Memorization(None), D, torch.tensor([1.0, -2.0]))
    assert set(s) == {D_OUT_TRAIN, D_ADA_RT} and D.calls == 0


def test_memorization_costs_nothing_between_log_steps():
    D = _BatchNormD()
    Memorization(torch.randn(3, 1, 4, 4)).report(
        D, torch.ones(2), lambda x: x, contextlib.nullcontext
    )
    assert D.calls == 0
