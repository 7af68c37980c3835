"""Exact resume, atomic checkpoints under kill -9, mismatched resumes, hostile input."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ganopt.checkpoint import load, save_atomic
from ganopt.composition import compose_config
from ganopt.config import ConfigError
from ganopt.setup import assembly
from ganopt.setup.assembly import build
from tests.conftest import FAST, REPO, as_run_dir, make_trainer

MLP = ["model.g.hidden=[32,32]", "model.d.hidden=[32,32]", "trainer.batch_size=64"]
DCGAN = [
    "model=dcgan",
    "data=digits",
    "model.g.width=8",
    "model.d.width=8",
    "trainer.batch_size=32",
]
EVERY_STEP = ["trainer.log_every=1", "trainer.hist_every=3", "trainer.eval_every=4"]


def _run(overrides, run_dir, resume_from=None):
    trainer, logger = make_trainer([*overrides, *EVERY_STEP], run_dir)
    if resume_from is not None:
        trainer.state.load_state_dict(load(resume_from))
    trainer.fit()
    weights = [
        t.clone() for t in [*trainer.G.state_dict().values(), *trainer.D.state_dict().values()]
    ]
    return weights, logger


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        MLP,
        DCGAN,
        [*MLP, "trainer.ema_decay=0.9", "reg=instance_noise", "loss=wgan_gp"],
        [*MLP, "loss=rasgan", "reg.every=4", "+reg@reg2=instance_noise"],
        [*MLP, "optim=optimistic_adam", "trainer.update=simultaneous"],
        [*MLP, "optim=extra_adam", "reg=consensus"],
        [*MLP, "trainer.fused=true"],
        [*MLP, "optim=lookahead_adam", "optim.lookahead.k=4"],
        [*MLP, "optim=negative_momentum"],
    ],
    ids=[
        "mlp",
        "dcgan",
        "mlp+ema+noise+gp",
        "rasgan+lazy_r1+noise",
        "optimistic+simultaneous",
        "extra+consensus",
        "mlp+fused",
        "lookahead",
        "negative_momentum",
    ],
)
def test_a_resumed_run_is_bit_identical_to_a_straight_one(model, tmp_path):
    """Resumed from the straight run's own step-6 checkpoint, with the same total (the default
    recipe's learning-rate decay is relative to trainer.steps)."""
    straight_dir = tmp_path / "straight"
    straight, straight_log = _run(
        [*model, "trainer.steps=12", "trainer.ckpt_every=6"], straight_dir
    )
    resumed, resumed_log = _run(
        [*model, "trainer.steps=12"],
        tmp_path / "split",
        resume_from=straight_dir / "checkpoints" / "step_0000006.pt",
    )
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed, strict=True))
    for tag in ("loss/D", "loss/G", "grad_norm/G/total", "grad_signal/G"):
        after = [(s, v) for s, v in straight_log.scalar_log[tag] if s > 6]
        assert resumed_log.scalar_log[tag] == after, tag
    # every evaluation, the one before the checkpoint included (steps 4, 8 and 12)
    history = (straight_dir / "evaluations.csv").read_text()
    assert (tmp_path / "split" / "evaluations.csv").read_text() == history
    assert [line.split(",")[0] for line in history.splitlines()] == ["step", "4", "8", "12"]


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [("true", "false"), ("false", "true")])
def test_a_resume_may_switch_flat_params_and_continues_the_same_run(first, then, tmp_path):
    """Checkpoints keep one optimizer state per parameter, with or without one buffer, and
    both step to the same bits: a resume that switches trainer.flat_params is the same run."""
    straight_dir = tmp_path / "straight"
    straight, _ = _run(
        [*MLP, "trainer.steps=12", "trainer.ckpt_every=6", f"trainer.flat_params={first}"],
        straight_dir,
    )
    resumed, _ = _run(
        [*MLP, "trainer.steps=12", f"trainer.flat_params={then}"],
        tmp_path / "split",
        resume_from=straight_dir / "checkpoints" / "step_0000006.pt",
    )
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed, strict=True))


def test_a_checkpoint_whose_parameters_skipped_steps_resumes_with_separate_tensors(tmp_path):
    """A lazy R1 step skips D's last bias, so D's step counts differ: one buffer cannot hold
    them, and the resume says what to do instead."""
    _run([*MLP, "reg.every=4", "trainer.steps=8"], tmp_path / "lazy")
    saved = tmp_path / "lazy" / "checkpoints" / "last.pt"
    flat, _ = make_trainer([*MLP, "trainer.steps=10"], tmp_path / "flat")
    with pytest.raises(ValueError, match=r"opt_D does not fit .* trainer\.flat_params=false"):
        flat.state.load_state_dict(load(saved))
    separate, _ = make_trainer([*MLP, "trainer.steps=10", "trainer.flat_params=false"], tmp_path)
    separate.state.load_state_dict(load(saved))
    assert separate.fit().status == "ok"


@pytest.mark.slow
def test_raising_trainer_steps_of_a_constant_rate_run_continues_it_exactly(tmp_path):
    """Without a schedule, a run extended by resume= with a larger trainer.steps is the same run
    as one trained to that total at once."""
    constant = [*MLP, "optim=adam"]
    straight, _ = _run([*constant, "trainer.steps=12"], tmp_path / "straight")
    _run([*constant, "trainer.steps=6"], tmp_path / "split")
    resumed, _ = _run(
        [*constant, "trainer.steps=12"],
        tmp_path / "split",
        resume_from=tmp_path / "split" / "checkpoints" / "last.pt",
    )
    assert all(torch.equal(a, b) for a, b in zip(straight, resumed, strict=True))


@pytest.mark.slow  # evaluates digits at the end: trains the session's classifier
def test_checkpoints_hold_every_piece_of_state(tmp_path, private_cache):
    trainer, _ = make_trainer([*DCGAN, "trainer.steps=2"], tmp_path)
    trainer.fit()
    state = load(tmp_path / "checkpoints" / "last.pt")  # weights_only=True
    assert {"G", "D", "opt_G", "opt_D", "step", "rng", "data", "alarm", "optim_config"} <= set(
        state
    )
    assert {"torch", "python", "numpy"} <= set(state["rng"])
    assert state["data"]["position"] == 2 * 32
    assert "project.norm.running_mean" in state["G"]  # BatchNorm statistics travel too


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ["model.d.hidden=[16,16]"],
            r"the checkpoint's D does not fit this config: parameter fc1.weight has shape "
            r"\[32, 2\] there, \[16, 2\] here",
        ),
        (["loss=standard"], "the checkpoint's loss is nonsaturating, this run's is standard"),
        (["optim=rmsprop"], "the checkpoint's optim.d is adam, this run's is rmsprop"),
        (["+reg@reg2=instance_noise"], "the checkpoint's reg2 is none, this run's is instance_no"),
    ],
)
def test_a_mismatched_resume_names_the_mismatch(change, message, tmp_path):
    trainer, _ = make_trainer([*MLP, "trainer.steps=2"], tmp_path)
    trainer.fit()
    other, _ = make_trainer([*MLP, "trainer.steps=4", *change], tmp_path / "other")
    with pytest.raises(ValueError, match=message):
        other.state.load_state_dict(load(tmp_path / "checkpoints" / "last.pt"))


def test_a_mismatched_resume_is_refused_before_anything_is_written(tmp_path):
    from ganopt.logger import TensorBoardLogger
    from ganopt.resume import resume

    trainer, _ = make_trainer([*MLP, "trainer.steps=2"], tmp_path)
    trainer.fit()
    checkpoint = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    run = as_run_dir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    parts = build(compose_config([*FAST, *MLP, "trainer.steps=4", "model.d.hidden=[8]"]))
    other = assembly.make_trainer(parts, tmp_path, TensorBoardLogger(tmp_path))  # as train.py does
    with pytest.raises(ConfigError, match="resume: the checkpoint's D does not fit this config"):
        resume(other, run)
    other.recorder.logger.close()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == checkpoint
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no new event file either


def test_resuming_a_finished_run_asks_for_more_steps(tmp_path):
    from ganopt.resume import resume

    trainer, _ = make_trainer([*MLP, "trainer.steps=3"], tmp_path)
    trainer.fit()
    again, _ = make_trainer([*MLP, "trainer.steps=3"], tmp_path)
    with pytest.raises(ConfigError, match=r"at step 3, and trainer\.steps=3: raise trainer\.steps"):
        resume(again, as_run_dir(tmp_path))
    with pytest.raises(ConfigError, match="nowhere does not exist"):
        resume(again, str(tmp_path / "nowhere"))


def test_a_failing_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"step": 2}, path)
    assert load(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256"]


WRITER = """
import sys, torch
from pathlib import Path
from ganopt.checkpoint import CheckpointDir
ckpts = CheckpointDir(Path(sys.argv[1]), keep=2)
state = {"G": {"w": torch.randn(512, 512)}, "step": 0}
print("ready", flush=True)
step = 0
while True:
    step += 1
    state["step"] = step
    ckpts.save(state, step, periodic=step % 3 == 0)
"""


@pytest.mark.slow
def test_kill_9_while_checkpointing_never_leaves_a_corrupt_last_pt(tmp_path):
    """A process that does nothing but write checkpoints, killed at random moments."""
    for attempt in range(3):
        ckpt_dir = tmp_path / str(attempt)
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ckpt_dir)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not (ckpt_dir / "last.pt").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05 + 0.137 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert load(ckpt_dir / "last.pt")["step"] >= 1
        for periodic in ckpt_dir.glob("step_*.pt"):
            assert load(periodic)["step"] % 3 == 0
