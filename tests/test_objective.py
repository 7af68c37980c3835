"""The objective's passes and phases: relativistic G steps, regularizers that compose, lazy
regularization on an interval."""

import math

import pytest
import torch

from ganopt.composition import compose_config
from ganopt.losses import NonSaturatingLoss, RelativisticAverageLoss
from ganopt.objective import Objective
from ganopt.regularizers import GradientPenalty, InstanceNoise, r1
from ganopt.setup.assembly import build
from tests.conftest import make_trainer
from tests.test_strategies import LinearD


class Counting:
    """The run's data source, counting the batches drawn from it."""

    def __init__(self, data):
        self.data, self.batches = data, 0

    def __next__(self):
        self.batches += 1
        return next(self.data)

    def __getattr__(self, name):
        return getattr(self.data, name)


SMALL = ["model.g.hidden=[16,16]", "model.d.hidden=[16,16]", "trainer.batch_size=32"]


def test_phases_put_d_then_lazy_regularizers_then_g():
    objective = Objective(NonSaturatingLoss(), [r1(1.0, every=16), InstanceNoise(0.1)])
    phases = objective.phases(d_steps=5)
    assert [(p.kind, p.repeats, p.every) for p in phases] == [
        ("D", 5, 1),
        ("reg", 1, 16),
        ("G", 1, 1),
    ]
    assert objective.d_inline == [objective.regularizers[1]]  # the noise: every step, in D's pass


def test_a_lazy_penalty_is_the_penalty_times_its_interval():
    """StyleGAN2's lazy regularization: every k steps, k times the penalty."""
    D, G = LinearD([3.0, 4.0]), torch.nn.Identity()
    real, z = torch.randn(8, 2), torch.randn(8, 2)
    lazy = r1(4.0, every=16)
    objective = Objective(NonSaturatingLoss(), [lazy])
    penalty = objective.lazy_penalty(lazy, G, D, real, z, step=16)
    assert penalty.item() == pytest.approx(16 * 2.0 * 25.0)  # 16 x gamma/2 x ||w||^2


def test_every_must_be_a_positive_int():
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        r1(1.0, every=0)
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        GradientPenalty(1.0, "real", 0.0, every=1.5)


def test_a_lazy_regularizer_steps_d_on_its_interval_only(run_dir):
    """reg.every=4 over 8 steps: D steps on every step plus two lazy steps, each on a batch of
    its own, and the plain D pass has no penalty."""
    trainer, logger = make_trainer(
        [*SMALL, "reg.every=4", "trainer.steps=8", "trainer.log_every=1"], run_dir
    )
    trainer.data = Counting(trainer.data)
    calls = []
    original = trainer.train_regularizer
    trainer.train_regularizer = lambda *a: calls.append(trainer.step + 1) or original(*a)
    assert trainer.fit().status == "ok"
    assert calls == [4, 8]
    assert trainer.data.batches == 8 + 2
    assert "loss/D_penalty" not in logger.scalar_log


def test_two_regularizers_compose_and_train(run_dir):
    cfg = compose_config([*SMALL, "+reg@reg2=instance_noise", "reg2.sigma=0.05"])
    regs = build(cfg).regularizers
    assert [type(r) for r in regs] == [GradientPenalty, InstanceNoise]
    assert regs[1].sigma == 0.05
    trainer, logger = make_trainer(
        [*SMALL, "+reg@reg2=instance_noise", "trainer.steps=4", "trainer.log_every=1"], run_dir
    )
    assert trainer.fit().status == "ok"
    assert all(v > 0 for _, v in logger.scalar_log["loss/D_penalty"])


def test_a_second_regularizer_is_checked_like_the_first():
    from ganopt.config import ConfigError

    with pytest.raises(ConfigError, match=r"reg2.sigmaa: not an argument of regularizer"):
        build(compose_config(["+reg@reg2=instance_noise", "+reg2.sigmaa=1"]))
    with pytest.raises(ConfigError, match=r"reg2.name: no regularizer 'r3'; choose from"):
        build(compose_config(["+reg@reg2=instance_noise", "reg2.name=r3"]))


@pytest.mark.parametrize("loss", ["rsgan", "rasgan", "ralsgan"])
def test_relativistic_losses_train_and_read_a_real_batch_in_g_step(loss, run_dir):
    trainer, logger = make_trainer(
        [*SMALL, f"loss={loss}", "trainer.steps=6", "trainer.log_every=1"], run_dir
    )
    trainer.data = Counting(trainer.data)
    assert trainer.fit().status == "ok"
    assert trainer.data.batches == 6 * 2  # D's batch and G's
    for tag, series in logger.scalar_log.items():
        assert all(math.isfinite(v) for _, v in series), tag
    assert "D/prob_real" not in logger.scalar_log  # sigmoid(a) alone is no probability here
    assert f"grad_norm_shadow/G/{loss}" not in logger.scalar_log
    assert "grad_norm_shadow/G/nonsaturating" in logger.scalar_log


def test_the_g_pass_gives_the_relativistic_loss_its_real_logits():
    D, G = LinearD([1.0, -1.0]), torch.nn.Identity()
    real, z = torch.randn(8, 2), torch.randn(8, 2)
    g = Objective(RelativisticAverageLoss()).g_pass(G, D, z, step=1, real=real)
    expected = RelativisticAverageLoss().g_loss(D(z), D(real))
    assert torch.allclose(g.loss, expected)
    assert torch.equal(g.out_real, D(real).detach())
