"""Checks that need a CUDA device: skipped elsewhere, run by scripts/gpu_check.sh."""

import pytest
import torch

from tests.conftest import make_trainer

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
    ],
    ids=["toy", "toy+gp+ema", "dcgan", "dcgan+bf16"],
)
def test_steps_between_log_steps_never_sync_the_host(overrides, run_dir):
    trainer, _ = make_trainer(["trainer.device=cuda", "trainer.batch_size=64", *overrides], run_dir)
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
