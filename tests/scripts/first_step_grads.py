"""Run under torchrun (or alone): for each case, one D step and one G step on a fixed global
batch split over the ranks; rank 0 saves every parameter's gradient to argv[1].
tests/test_distributed.py compares 2 ranks x B/2 with 1 process x B."""

import sys
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from ganopt.composition import compose_config
from ganopt.distributed import init, shutdown, world_from_env
from ganopt.logger import NullLogger
from ganopt.setup.assembly import build, make_trainer

BATCH = 64
world = world_from_env()
init(world)
CASES = {"nonsaturating": [], "standard+r1": ["loss=standard", "reg=r1"]}  # no BatchNorm


def first_step_grads(overrides: list[str]) -> dict[str, torch.Tensor]:
    cfg = compose_config([f"trainer.batch_size={BATCH}", "trainer.progress=false", *overrides])
    parts = build(cfg, world)
    rng = torch.Generator().manual_seed(123)
    real = parts.data.sample(BATCH, generator=rng)
    z_d = torch.randn(BATCH, parts.G.z_dim, generator=rng)
    z_g = torch.randn(BATCH, parts.G.z_dim, generator=rng)
    share = slice(world.rank * BATCH // world.size, (world.rank + 1) * BATCH // world.size)
    with TemporaryDirectory() as run_dir:
        trainer = make_trainer(parts, Path(run_dir), NullLogger())
        trainer.d_gradients(real[share], z_d[share])
        trainer.g_gradients(z_g[share])
    grads = {f"G.{n}": p.grad for n, p in parts.G.named_parameters()}
    return grads | {f"D.{n}": p.grad for n, p in parts.D.named_parameters()}


results = {case: first_step_grads(overrides) for case, overrides in CASES.items()}
if world.is_main:
    torch.save(results, sys.argv[1])
shutdown()
