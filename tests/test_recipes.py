"""docs/architecture.md's four recipes, each followed as written: a new loss, regularizer, data
set and diagnostic reach a trained run without a change to the Trainer. The new code goes
into ganopt's modules the way a contributor would write it there (here: set on the module),
the new YAML into a copy of configs/."""

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

import ganopt.composition
import ganopt.data.toy
import ganopt.diagnostics.measurements
import ganopt.losses
import ganopt.objective
import ganopt.regularizers
from ganopt.composition import compose_config
from ganopt.diagnostics.report import report
from ganopt.setup import registry
from ganopt.setup.assembly import build, make_trainer
from ganopt.tags import DESCRIPTIONS, description
from tests.conftest import FAST, MemoryLogger

pytestmark = pytest.mark.slow  # seven short runs

SMALL = ["model.g.hidden=[16,16]", "model.d.hidden=[16,16]", "trainer.batch_size=32"]


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A copy of configs/ that composition reads instead, for the recipes' YAML files."""
    copy = tmp_path / "configs"
    shutil.copytree(ganopt.composition.config_dir(), copy)
    monkeypatch.setattr(ganopt.composition, "config_dir", lambda: copy)
    return copy


def add_to(module, monkeypatch, cls, table, name):
    """As if ``cls`` were written in ``module``'s file and given its line in the registry's
    ``table`` (ganopt/setup/registry.py) under ``name``."""
    cls.__module__ = module.__name__
    monkeypatch.setattr(module, cls.__name__, cls, raising=False)
    monkeypatch.setitem(table, name, cls)


def train(overrides, run_dir, steps=4):
    logger = MemoryLogger()
    parts = build(compose_config([*FAST, *SMALL, f"trainer.steps={steps}", *overrides]))
    trainer = make_trainer(parts, run_dir, logger)
    result = trainer.fit()
    assert result.status == "ok", result.metrics
    return trainer, logger


def test_recipe_add_a_loss(configs, monkeypatch, tmp_path):
    """Steps 1-4: the class in ganopt/losses.py, its registry line, its YAML, its entry in
    GENERATOR_LOSSES."""

    class SoftHingeLoss(ganopt.losses.GANLoss):
        """D: E[softplus(1 - a_real)] + E[softplus(1 + a_fake)]; G: E[softplus(1 - a_fake)]."""

        name = "soft_hinge"
        uses_sigmoid = False

        def d_loss(self, real, fake):
            return F.softplus(1 - real).mean() + F.softplus(1 + fake).mean()

        def g_loss(self, fake, real=None):
            return F.softplus(1 - fake).mean()

        def d_grad(self, real, fake):
            return -torch.sigmoid(1 - real), torch.sigmoid(1 + fake)

        def g_grad(self, fake, real=None):
            return -torch.sigmoid(1 - fake)

    add_to(ganopt.losses, monkeypatch, SoftHingeLoss, registry.LOSSES, "soft_hinge")
    (configs / "loss" / "soft_hinge.yaml").write_text("name: soft_hinge\n")
    monkeypatch.setitem(ganopt.losses.GENERATOR_LOSSES, "soft_hinge", SoftHingeLoss)

    trainer, logger = train(["loss=soft_hinge"], tmp_path)
    assert isinstance(trainer.loss, SoftHingeLoss)
    assert all(math.isfinite(v) for _, v in logger.scalar_log["loss/D"])
    assert "grad_signal/G" in logger.scalar_log  # its g_grad reaches the diagnostics
    _, plain = train(["loss=nonsaturating"], tmp_path / "plain")
    assert "grad_norm_shadow/G/soft_hinge" in plain.scalar_log  # and it is a shadow of others


def test_recipe_add_a_regularizer_on_the_generator_side(configs, monkeypatch, tmp_path):
    """Steps 1-3: the class in ganopt/regularizers.py (network "G", g_penalty), its registry
    line, its YAML; used
    beside R1 with +reg@reg2=..., every 2 steps."""

    class OutputL2(ganopt.regularizers.Regularizer):
        """weight · E[||G(z)||²]: pulls G's samples toward the origin."""

        network = "G"

        def __init__(self, weight: float = 0.1, every: int = 1) -> None:
            super().__init__(every)
            self.weight = weight

        def g_penalty(self, G, z, fake):
            return self.weight * fake.pow(2).flatten(1).sum(1).mean()

    add_to(ganopt.regularizers, monkeypatch, OutputL2, registry.REGULARIZERS, "output_l2")
    (configs / "reg" / "output_l2.yaml").write_text("name: output_l2\nweight: 0.1\nevery: 1\n")

    _, logger = train(["+reg@reg2=output_l2", "trainer.log_every=1"], tmp_path)
    assert all(v > 0 for _, v in logger.scalar_log["loss/G_penalty"])  # inline: every step
    lazy, _ = train(["+reg@reg2=output_l2", "reg2.every=2"], tmp_path / "lazy")
    assert [(p.kind, p.every) for p in lazy.phases] == [("D", 1), ("reg", 2), ("G", 1)]


def test_recipe_add_a_data_set(configs, monkeypatch, tmp_path):
    """Steps 1-3: the class in ganopt/data/ (shape, sample, __next__), its registry line, its
    YAML."""

    class Line(ganopt.data.toy.ToyDistribution):
        """Points uniform on the segment from (-1, -1) to (1, 1)."""

        def sample(self, n, generator=None):
            t = torch.rand(n, 1, device=self.device, generator=generator)
            return (2 * t - 1).expand(n, 2).clone()

    add_to(ganopt.data.toy, monkeypatch, Line, registry.DATA, "line")
    (configs / "data" / "line.yaml").write_text("name: line\n")

    trainer, _ = train(["data=line", "trainer.figures=true"], tmp_path)
    assert isinstance(trainer.data, Line)
    assert trainer.recorder.evaluator is None  # no mode metrics for a distribution without modes
    assert (tmp_path / "samples.png").exists()  # a 2-D data set gets the contour figure


def test_recipe_add_a_diagnostic(monkeypatch, tmp_path):
    """Steps 1-2: one report() where the value exists (here inside Objective.d_pass, in
    ganopt/objective.py alone), its description in ganopt/tags.py. It reaches TensorBoard on
    log steps, and between them the call records nothing."""
    d_pass = ganopt.objective.Objective.d_pass

    def reporting_d_pass(self, *args, **kwargs):
        d = d_pass(self, *args, **kwargs)
        report("D/out_real_std", d.out_real.std())
        return d

    monkeypatch.setattr(ganopt.objective.Objective, "d_pass", reporting_d_pass)
    text = "Spread of D's logits on the real batch of its last critic step."
    monkeypatch.setitem(DESCRIPTIONS, "D/out_real_std", text)

    _, logger = train(["trainer.log_every=2"], tmp_path)
    logged = logger.scalar_log["D/out_real_std"]
    assert [s for s, _ in logged] == [1, 2, 4]
    assert all(v > 0 for _, v in logged)
    assert description("D/out_real_std") == text


def test_recipe_add_an_update_rule(configs, monkeypatch, tmp_path):
    """Steps 1-3: an optimizer class in ganopt/optimizers.py, its registry line, its YAML for
    one network (configs/optimizer/) and for both (configs/optim/); each player gets its own
    instance, and its state is checkpointed like any optimizer's."""

    class SignSGD(torch.optim.Optimizer):
        """theta <- theta - lr * sign(grad): the step's size is lr whatever the gradient's."""

        def __init__(self, params, lr: float = 1e-3) -> None:
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad.sign(), alpha=-group["lr"])

    add_to(ganopt.optimizers, monkeypatch, SignSGD, registry.OPTIMIZERS, "sign_sgd")
    (configs / "optimizer" / "sign_sgd.yaml").write_text("name: sign_sgd\nlr: 1.0e-3\n")
    (configs / "optim" / "sign_sgd.yaml").write_text(
        "defaults:\n  - /optimizer@g: sign_sgd\n  - /optimizer@d: sign_sgd\n  - _self_\n"
        "clip: null\n"
    )

    overrides = ["optim=sign_sgd", "trainer.ema_decay=null"]
    start = build(compose_config([*FAST, *SMALL, "trainer.steps=4", *overrides])).G
    trainer, _ = train(overrides, tmp_path)
    assert isinstance(trainer.opt_G, SignSGD) and trainer.opt_G is not trainer.opt_D
    for before, after in zip(start.parameters(), trainer.G.parameters(), strict=True):
        moved = (after - before).abs()  # 4 steps of exactly lr each, or 0 where grad was 0
        assert moved.max() <= 4 * 1e-3 + 1e-7 and moved.max() > 0
