"""The default recipe trains, the naive SGD + clipping run is named "not learning", and the
parts of issue-level promises that need a real run: train.py in a subprocess."""

import json

import pytest

from tests.test_train_cli import QUIET, events, train

pytestmark = pytest.mark.slow  # end-to-end: python -m pytest -m "not slow" skips it


def test_the_default_recipe_finds_all_eight_ring_modes(tmp_path):
    """`python train.py`, shortened to 1000 steps (its lr decay shortened with it)."""
    run_dir = tmp_path / "run"
    proc = train("trainer.steps=1000", f"hydra.run.dir={run_dir}", *QUIET)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "ok"
    assert metrics["modes"] == 8
    assert metrics["hq_ratio"] > 0.5
    assert metrics["kl"] < 0.1
    assert metrics["stalled_step"] is None and metrics["exploding_step"] is None

    acc = events(run_dir)
    scalars = acc.Tags()["scalars"]
    assert {"update_ratio/G/total", "update_ratio/D/total", "update_ratio/G/fc1.weight"} <= set(
        scalars
    )
    # R1's penalty: D descends loss/D + loss/D_penalty, and grad_norm/D/total is its gradient
    for total, loss, penalty in zip(
        acc.Scalars("loss/D_total"),
        acc.Scalars("loss/D"),
        acc.Scalars("loss/D_penalty"),
        strict=True,
    ):
        assert total.value == pytest.approx(loss.value + penalty.value, rel=1e-5)


def test_sgd_with_the_papers_clip_and_plain_rates_is_named_not_learning(tmp_path):
    """SGD at 0.01 against a critic clipped at 0.01: G's gradient is ~1e-5, its steps ~1e-8 of
    its weights. The run says so (stalled_step) instead of quietly producing nothing."""
    run_dir = tmp_path / "run"
    proc = train(
        "loss=wgan",
        "optim=sgd_clip",
        "optim.g.lr=0.01",
        "optim.d.lr=0.01",
        "trainer.steps=150",
        "trainer.d_steps=1",
        "trainer.eval_every=0",
        "trainer.sample_every=0",
        f"hydra.run.dir={run_dir}",
        *QUIET,
    )
    assert proc.returncode == 0, proc.stderr
    assert "generator not learning at step 100" in proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["stalled_step"] == 100  # log steps 1, 50, 100: three below 1e-6
    ratios = [e.value for e in events(run_dir).Scalars("update_ratio/G/total")]
    assert max(ratios) < 1e-6
    description = events(run_dir).SummaryMetadata("wasserstein/estimate").summary_description
    assert "K * W1" in description


def test_batchnorm_in_d_with_a_gradient_penalty_is_refused_naming_the_key(tmp_path):
    run_dir = tmp_path / "run"
    proc = train(
        "model=dcgan",
        "data=digits",
        "data.resolution=16",
        "model.d.norm=batch",
        f"hydra.run.dir={run_dir}",
    )
    assert proc.returncode == 2
    assert (
        "model.d.norm: BatchNorm in D cannot be combined with the gradient penalty of reg=r1"
        in (proc.stderr)
    )
    assert "Traceback" not in proc.stderr
    assert not list(run_dir.glob("events.out.tfevents.*"))
