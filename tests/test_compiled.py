"""trainer.compile: compiled passes between log steps, eager ones where a penalty
differentiates twice, and a warm-up that leaves the run's trajectory as it was."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganopt.compiled import Passes
from tests.conftest import make_trainer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def traced_only(monkeypatch):
    """torch.compile through a backend that runs each captured graph as traced: the same
    kernels as eager, so the passes' routing and the warm-up can be checked bit for bit.
    Returns the graphs it was handed."""
    graphs = []
    compile_ = torch.compile

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(torch, "compile", lambda m, mode=None: compile_(m, backend=backend))
    torch.compiler.reset()  # no graph compiled by an earlier test in this process is reused
    yield graphs
    torch.compiler.reset()


def _weights(trainer) -> list[torch.Tensor]:
    state = [*trainer.G.state_dict().values(), *trainer.D.state_dict().values()]
    return [t.detach().clone() for t in state]


@pytest.mark.parametrize(
    "recipe",
    [[], ["loss=wgan_gp", "trainer.d_steps=2"], ["optim=extra_adam"], ["reg=r2"]],
    ids=["default_r1", "wgan_gp", "extra_adam", "r2"],
)
def test_compiled_passes_and_their_warm_up_keep_the_trajectory(recipe, traced_only, tmp_path):
    run = ["trainer.steps=9", "trainer.log_every=4", "trainer.batch_size=64", *recipe]
    eager, eager_log = make_trainer(run, tmp_path / "eager")
    eager.fit()
    compiled, logger = make_trainer([*run, "trainer.compile=true"], tmp_path / "compiled")
    compiled.fit()
    assert len(traced_only) >= 3  # G with and without grad, D: the passes did compile
    assert all(torch.equal(a, b) for a, b in zip(_weights(eager), _weights(compiled), strict=True))
    metrics = json.loads((tmp_path / "compiled" / "metrics.json").read_text())
    assert metrics["compile_seconds"] > 0
    assert "compile_seconds" not in json.loads((tmp_path / "eager" / "metrics.json").read_text())
    assert logger.scalar_log["loss/D"] == eager_log.scalar_log["loss/D"]  # log steps: eager


def test_an_input_a_penalty_differentiates_runs_eagerly(traced_only, tmp_path):
    """R1 takes D's gradient in the real batch with create_graph: that pass must not go
    through a compiled graph, which cannot be differentiated twice."""
    trainer, _ = make_trainer(["trainer.compile=true", "trainer.batch_size=8"], tmp_path)
    D = trainer.steps.compiled.D_train
    calls = []
    D.module = lambda x: calls.append("eager") or trainer.D(x)
    real = torch.randn(8, 2).requires_grad_(True)
    D(real)
    D(torch.randn(8, 2))
    assert calls == ["eager"]


@pytest.mark.parametrize("compile_fails", [False, True], ids=["graphs_fail", "both_fail"])
def test_a_step_torch_compile_cannot_run_falls_back_one_step_at_a_time(
    compile_fails, traced_only, tmp_path, caplog, monkeypatch
):
    """CUDA graphs that fail in the warm-up leave the run compiled without them; compiled
    passes that fail too (torch 2.11's on DCGAN) leave it eager. Either way it trains from
    the state before the failed tries: the eager trajectory."""
    run = ["trainer.steps=6", "trainer.log_every=3", "trainer.batch_size=32"]
    eager, _ = make_trainer(run, tmp_path / "eager")
    eager.fit()
    trainer, _ = make_trainer([*run, "trainer.compile=true"], tmp_path / "graphs")

    def capture_fails(x):  # after D's pass has stepped: the state must be restored
        raise AssertionError("expected size 64==64, stride 16==1 at dim=1")

    failing = dataclasses.replace(trainer.steps.compiled, G_train=capture_fails)
    trainer.steps.cuda_graphs, trainer.steps.compiled = True, failing  # as on CUDA
    if compile_fails:
        monkeypatch.setattr(Passes, "compiled", lambda self, cuda_graphs: failing)
    assert trainer.fit().status == "ok"
    assert (
        "trainer.cuda_graphs failed on this model, so the run uses compiled passes" in caplog.text
    )
    assert ("trainer.compile failed" in caplog.text) == compile_fails
    metrics = json.loads((tmp_path / "graphs" / "metrics.json").read_text())
    assert ("compile_seconds" in metrics) != compile_fails
    assert (trainer.steps.compiled is None) == compile_fails
    assert all(torch.equal(a, b) for a, b in zip(_weights(eager), _weights(trainer), strict=True))


@pytest.mark.slow
def test_a_compiled_cpu_run_follows_the_eager_one(tmp_path):
    """The real compiler (inductor's C++ kernels): the same run to within float rounding."""
    metrics = []
    for name, extra in [("eager", []), ("compiled", ["trainer.compile=true"])]:
        command = [
            sys.executable,
            str(REPO / "train.py"),
            "trainer.steps=30",
            "trainer.log_every=10",
            "trainer.eval_every=0",
            "trainer.progress=false",
            "trainer.batch_size=64",
            *extra,
            f"hydra.run.dir={tmp_path / name}",
        ]
        env = os.environ | {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
        subprocess.run(command, check=True, capture_output=True, env=env, timeout=600)
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    eager, compiled = metrics
    assert compiled["status"] == "ok" and compiled["compile_seconds"] > 0
    for key in ("loss_D", "loss_G", "grad_norm_D"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-3), key


@pytest.mark.slow
def test_without_a_cxx_compiler_a_cpu_compile_is_refused(tmp_path):
    env = os.environ | {"PATH": str(Path(sys.executable).parent), "CXX": ""}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "trainer.compile=true", f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "invalid config: trainer.compile: " in last and "C++ compiler" in last
    assert not out.exists()
