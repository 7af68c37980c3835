"""Checks that need a CUDA device: skipped elsewhere, run by scripts/gpu_check.sh."""

import json

import pytest
import torch

from ganopt.checkpoint import non_finite_network
from ganopt.resume import resume
from tests.conftest import as_run_dir, first_state, make_trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["loss=wgan_gp", "trainer.ema_decay=0.99"],
        ["model=dcgan", "data=digits"],
        ["model=dcgan", "data=digits", "trainer.amp=bf16"],
        ["trainer.fused=true"],
        ["trainer.compile=true"],
        ["trainer.cuda_graphs=true"],
        ["model=dcgan", "data=digits", "trainer.cuda_graphs=true"],
        ["model=dcgan", "data=digits", "aug=diffaugment", "trainer.amp=bf16"],
        ["model=dcgan", "data=digits", "aug=diffaugment", "trainer.cuda_graphs=true"],
    ],
    ids=[
        "toy",
        "toy+gp+ema",
        "dcgan",
        "dcgan+bf16",
        "toy+fused",
        "toy+compile",
        "toy+graphs",
        "dcgan+graphs",
        "dcgan+diffaugment+bf16",
        "dcgan+diffaugment+graphs",
    ],
)
def test_steps_between_log_steps_never_sync_the_host(overrides, run_dir):
    trainer, _ = make_trainer(["trainer.device=cuda", "trainer.batch_size=64", *overrides], run_dir)
    if trainer.steps.compiled is not None:  # as fit does: compiles, or falls back
        trainer.steps.warm_up(trainer._two_steps, trainer.state, lambda: trainer._freeze_d(False))
    for step in range(1, 4):  # warm-up: cuDNN autotuning and allocator growth may sync
        trainer.train_step(step, None)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(1, 21):
            loss_D, loss_G = trainer.train_step(step, None)
            trainer.guard.record(step, [loss_D, loss_G])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.guard.check() is None


@pytest.mark.parametrize("model", [[], ["model=dcgan", "data=digits"]], ids=["toy", "dcgan"])
def test_one_buffer_and_separate_tensors_train_to_the_same_bits_on_cuda(model, tmp_path):
    """docs/performance.md: on CUDA separate tensors run torch's foreach kernels and one
    buffer its per-tensor kernels (DCGAN's convolutions channels-last, views of the buffer
    with their own strides); the weights must come out the same."""
    weights = []
    for flat in ("true", "false"):
        trainer, _ = make_trainer(
            [
                "trainer.device=cuda",
                "trainer.batch_size=64",
                "trainer.steps=6",
                *model,
                f"trainer.flat_params={flat}",
                "diagnostics.game_every=0",
            ],
            tmp_path / flat,
        )
        assert bool(trainer.updates.flat) is (flat == "true")
        trainer.fit()
        weights.append(
            [
                t.clone()
                for t in [*trainer.G.state_dict().values(), *trainer.D.state_dict().values()]
            ]
        )
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_a_cuda_run_with_compile_and_bf16_trains(run_dir):
    trainer, logger = make_trainer(
        [
            "trainer.device=cuda",
            "model=dcgan",
            "data=digits",
            "trainer.amp=bf16",
            "trainer.compile=true",
            "trainer.steps=20",
            "trainer.log_every=10",
        ],
        run_dir,
    )
    result = trainer.fit()
    assert result.status == "ok"
    assert all(v == v for _, v in logger.scalar_log["loss/D"])  # finite
    assert next(trainer.G.parameters()).is_cuda


def test_a_cuda_run_with_diffaugment_logs_the_held_out_gap_in_bf16(run_dir):
    """The held-out batch runs through D under autocast, from a fork of the CUDA RNG."""
    trainer, logger = make_trainer(
        [
            *["trainer.device=cuda", "model=dcgan", "data=digits", "data.limit=200"],
            *["aug=diffaugment", "trainer.amp=bf16", "trainer.steps=4", "trainer.log_every=2"],
        ],
        run_dir,
    )
    assert trainer.fit().status == "ok"
    log = logger.scalar_log
    for tag in ("D/out_train", "D/out_heldout", "D/overfit_gap", "D/ada_rt"):
        assert [s for s, _ in log[tag]] == [1, 2, 4] and all(v == v for _, v in log[tag]), tag


@pytest.mark.parametrize("setting", ["trainer.compile=true", "trainer.cuda_graphs=true"])
def test_compiled_cuda_runs_follow_the_eager_run(setting, tmp_path):
    """Compiled passes (with CUDA graphs: replayed) give the eager run's numbers to within
    float rounding, and metrics.json reports the compilation apart from steps/s."""
    run = ["trainer.device=cuda", "trainer.steps=30", "trainer.log_every=10"]
    losses = []
    for name, extra in [("eager", []), ("compiled", [setting])]:
        trainer, logger = make_trainer([*run, *extra], tmp_path / name)
        assert trainer.fit().status == "ok"
        losses.append([v for _, v in logger.scalar_log["loss/D"]])
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    metrics = json.loads((tmp_path / "compiled" / "metrics.json").read_text())
    assert metrics["compile_seconds"] > 0


def test_a_checkpoint_of_cuda_weights_with_cpu_step_counts_is_checked(tmp_path):
    """Adam keeps its step counts on the CPU beside CUDA weights: the finiteness check of
    each checkpoint must take both (it raised on mixed devices)."""
    trainer, _ = make_trainer(["trainer.device=cuda", "trainer.steps=3"], tmp_path)
    assert trainer.fit().status == "ok"
    state = trainer.state.state_dict()
    assert {t.device.type for t in state["opt_D"]["state"][0].values()} == {"cpu", "cuda"}
    assert non_finite_network(state) is None
    state["opt_D"]["state"][0]["exp_avg_sq"].fill_(float("inf"))
    assert non_finite_network(state) == "D"


def test_a_cuda_run_resumed_with_trainer_fused_steps_fused(tmp_path):
    """Per-tensor Adam keeps its step counts on the CPU; fused kernels need them beside the
    weights: a checkpoint of the one must load into the other (it raised once switched after
    loading)."""
    trainer, _ = make_trainer(["trainer.device=cuda", "trainer.steps=2"], tmp_path)
    assert trainer.fit().status == "ok"
    fused, _ = make_trainer(
        ["trainer.device=cuda", "trainer.steps=4", "trainer.fused=true"], tmp_path
    )
    resume(fused, as_run_dir(tmp_path))
    assert first_state(fused.opt_G)["step"].device.type == "cuda"
    assert fused.fit().status == "ok"
