"""Evaluation beside training: the same numbers as on the training thread, a checkpoint that
does not wait for its own step's evaluation, and a resume that evaluates that step again."""

import json
import threading

import pytest
import torch
from torch import nn

from ganopt.checkpoint import load
from ganopt.data import digits, ring
from ganopt.evaluation import DigitsScore, ModeCoverage
from ganopt.evaluation.background import BackgroundEvaluation
from ganopt.models import DCGANGenerator
from ganopt.setup import assembly
from tests.conftest import make_trainer

MLP = ["model.g.hidden=[32,32]", "model.d.hidden=[32,32]", "trainer.batch_size=64"]


def _toy_generator():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


class Sampler(nn.Module):
    def __init__(self, net, z_dim):
        super().__init__()
        self.net, self.z_dim = net, z_dim

    def forward(self, z):
        return self.net(z)


@pytest.mark.parametrize(
    "kind",
    ["points", pytest.param("digits", marks=pytest.mark.slow)],  # digits: its classifier
)
def test_an_evaluation_beside_training_gives_the_training_threads_numbers_bit_for_bit(kind):
    if kind == "points":
        evaluator, G = ModeCoverage(ring(batch_size=8), n=500), Sampler(_toy_generator(), 2)
    else:
        evaluator = DigitsScore(digits(batch_size=8, holdout=0).images, n=200, seed=1)
        torch.manual_seed(0)
        G = DCGANGenerator(16, (1, 8, 8), width=8)
    rng_state = torch.get_rng_state()
    beside = BackgroundEvaluation(7, evaluator, G)
    with torch.no_grad():  # the live weights move on meanwhile; the copy's are those of now
        here = evaluator(G)
        for p in G.parameters():
            p.add_(1.0)
    assert beside.result() == here
    assert beside.step == 7 and G.training  # the copy went to eval mode, the live G did not
    assert torch.equal(torch.get_rng_state(), rng_state)  # nor did the global RNG move


def test_what_an_evaluation_beside_training_raises_is_raised_where_its_result_is_read():
    def fails(G):
        raise MemoryError("no room")

    beside = BackgroundEvaluation(3, fails, nn.Linear(1, 1))
    with pytest.raises(MemoryError, match="no room"):
        beside.result()


@pytest.fixture
def beside(monkeypatch):
    """Evaluation beside training, as on a CPU run with a core to spare."""
    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: True)


def test_a_failed_evaluation_ends_the_run_as_failed_in_one_line(run_dir, beside):
    """Out of memory in the evaluation at step 4, raised on the training thread when shown."""
    trainer, _ = make_trainer([*MLP, "trainer.steps=12", "trainer.eval_every=4"], run_dir)

    def fails(self, G):
        raise MemoryError

    trainer.recorder.evaluator.__class__ = type("Failing", (ModeCoverage,), {"__call__": fails})
    result = trainer.fit()
    assert result.status == "failed"
    assert result.metrics["error"].startswith("out of memory during step")


def test_a_checkpoint_does_not_wait_for_its_own_steps_evaluation_and_a_resume_redoes_it(
    tmp_path, beside
):
    """Evaluation and checkpoint both every 4 steps: the checkpoint of step 4 holds no
    evaluation of step 4, which was running beside training, and a run resumed from it
    evaluates step 4 again, so that its evaluations.csv is the straight run's."""
    every_4 = [*MLP, "trainer.steps=12", "trainer.eval_every=4", "trainer.ckpt_every=4"]
    straight, _ = make_trainer(every_4, tmp_path / "straight")
    assert straight.fit().status == "ok"
    checkpoints = tmp_path / "straight" / "checkpoints"
    assert load(checkpoints / "step_0000004.pt")["evaluations"]["rows"] == []
    steps = [row["step"] for row in load(checkpoints / "step_0000008.pt")["evaluations"]["rows"]]
    assert steps == [4]  # every earlier one: the checkpoint waited for it

    resumed, logger = make_trainer(every_4, tmp_path / "split")
    resumed.state.load_state_dict(load(checkpoints / "step_0000004.pt"))
    assert resumed.fit().status == "ok"
    history = (tmp_path / "straight" / "evaluations.csv").read_text()
    assert (tmp_path / "split" / "evaluations.csv").read_text() == history
    assert [line.split(",")[0] for line in history.splitlines()] == ["step", "4", "8", "12"]
    assert [step for step, _ in logger.scalar_log["metrics/modes"]] == [4, 8, 12]


def test_an_evaluation_shown_later_writes_metrics_json_at_the_runs_step(run_dir, beside):
    trainer, _ = make_trainer([*MLP, "trainer.steps=12", "trainer.eval_every=4"], run_dir)
    recorder = trainer.recorder
    recorder.evaluate(4)
    recorder.show_evaluation(now=7)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 7 and metrics["modes"] is not None


def test_a_second_ctrl_c_ends_the_run_after_the_evaluation_thread(run_dir, beside):
    """A thread still in torch when the interpreter exits aborts the process (exit 134)."""
    trainer, _ = make_trainer([*MLP, "trainer.steps=12", "trainer.eval_every=4"], run_dir)
    recorder, release = trainer.recorder, threading.Event()
    evaluator = recorder.evaluator
    recorder.evaluator = lambda G: (release.wait(), evaluator(G))[1]
    recorder.evaluator.info, recorder.evaluator.success = evaluator.info, evaluator.success
    recorder.evaluate(4)
    threading.Timer(0.3, release.set).start()
    recorder.finish("interrupted", 4, aborted=True)
    assert release.is_set() and recorder._evaluating is None
    assert not any(t.name.startswith("ganopt-evaluation") for t in threading.enumerate())


def test_a_resume_in_the_runs_own_directory_does_not_log_a_shown_evaluation_twice(tmp_path, beside):
    """The checkpoint of step 4 was written while step 4's evaluation ran; the run showed it
    afterwards (evaluations.csv and TensorBoard hold it), and TensorBoard keeps what a run
    logged up to the checkpoint's step: the resumed run evaluates step 4 again for its own
    history, but writes it to TensorBoard only where the run directory had not shown it."""
    every_4 = [*MLP, "trainer.steps=12", "trainer.eval_every=4", "trainer.ckpt_every=4"]
    first, _ = make_trainer(every_4, tmp_path)
    assert first.fit().status == "ok"
    checkpoint = load(tmp_path / "checkpoints" / "step_0000004.pt")
    resumed, logger = make_trainer(every_4, tmp_path)
    resumed.state.load_state_dict(checkpoint)
    assert resumed.fit().status == "ok"
    assert [step for step, _ in logger.scalar_log["metrics/modes"]] == [8, 12]
    steps = [line.split(",")[0] for line in (tmp_path / "evaluations.csv").read_text().split()]
    assert steps == ["step", "4", "8", "12"]


def test_each_tensorboard_layout_covers_every_tag_so_far(tmp_path):
    """A resumed run's first scalars may be an evaluation's alone; TensorBoard shows the
    newest layout, which then had no chart of the training scalars."""
    from ganopt.logger import TensorBoardLogger, custom_scalars_layout

    logger, layouts = TensorBoardLogger(tmp_path), []
    logger.writer.add_custom_scalars = layouts.append
    logger.scalars(4, {"metrics/modes": 8.0})
    logger.scalars(5, {"loss/D": 1.0, "grad_x/D/real": 1.0})
    logger.scalars(6, {"loss/D": 1.0, "grad_x/D/real": 1.0})  # nothing new: no layout
    logger.close()
    tags = ["metrics/modes", "loss/D", "grad_x/D/real"]
    assert layouts[-1] == custom_scalars_layout(tags) and len(layouts) == 2
