"""What every mode of scripts/bench.py times with, so that their numbers compare: runs built as
train.py builds them, the Trainer's own steps/s, the bare hand-written loop, and variants that
take turns."""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ganopt.components import Components
from ganopt.composition import compose_config
from ganopt.ema import EMA
from ganopt.logger import TensorBoardLogger
from ganopt.optimizers import FlushedSubnormals
from ganopt.setup.assembly import build, make_trainer
from ganopt.trainer import RunResult

CONFIGS = {  # name: overrides (the defaults are mlp on ring8)
    "toy": [],
    "dcgan": ["model=dcgan", "data=digits"],
    "plain": ["reg=none", "trainer.ema_decay=null"],  # toy without R1 and EMA
    "wide": ["model.g.hidden=[1024,1024,1024]", "model.d.hidden=[1024,1024,1024]"],
}
#: what runs without --configs (--quick: toy alone)
DEFAULT_CONFIGS = ("toy", "dcgan")
#: generator steps per measured run, by config: (default, --quick)
STEPS = {"toy": (250, 100), "dcgan": (50, 20), "plain": (250, 100), "wide": (30, 10)}
#: torch's own intra-op thread count (one per core), before any run sets one
TORCH_THREADS = torch.get_num_threads()
#: interleaved repetitions: (default, --quick)
REPS = (3, 2)
#: the settings of --compiled
COMPILED = ("trainer.compile=true", "trainer.cuda_graphs=true")
#: the setting of --separate: each optimizer over its network's separate tensors
SEPARATE = "trainer.flat_params=false"


class CommandFailed(RuntimeError):
    """A timed command (a process of --startup, a pytest run of --suite) did not end as it
    must: the measurement stops, in one line."""


def components(overrides: list[str]) -> Components:
    """A run built as train.py builds it. Each starts from torch's own thread count, which
    trainer.threads then sets or leaves (not from the count an earlier run in this process set)."""
    torch.set_num_threads(TORCH_THREADS)
    return build(compose_config(overrides))


def on_cuda(device: str) -> bool:
    """Whether runs on ``--device`` go to a GPU (auto picks one where there is one)."""
    return "cuda" in device or (device == "auto" and torch.cuda.is_available())


def sync(device: torch.device) -> None:
    """Waits for the GPU's queued work, so that a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_trainer(overrides: list[str], steps: int) -> float:
    """Generator steps per second of a real run (its own measurement); NaN for a compiled one
    that fell back to eager passes, which would measure something else."""
    _, result = trained(overrides, steps)
    compiled = any(o in COMPILED for o in overrides)
    if compiled and "compile_seconds" not in result.metrics:
        return math.nan  # torch.compile failed on this model and the run fell back to eager
    return float(result.metrics["steps_per_sec"])


def trained(overrides: list[str], steps: int) -> tuple[Components, RunResult]:
    """A real run in a temporary directory, and what it was built from. The figures and the
    game's spectrum are left out unless asked for: the comparisons time steps (--breakdown
    times a whole run, figures included), and the drawing process would start beside them."""
    parts = components(
        [
            "trainer.figures=false",
            "diagnostics.game_every=0",
            *overrides,
            f"trainer.steps={steps}",
            "trainer.progress=false",
            "trainer.eval_every=0",
            "trainer.ckpt_every=0",
        ]
    )
    parts.evaluator = None  # evaluation is not training; its cost is not what is compared
    with tempfile.TemporaryDirectory() as run_dir:
        logger = TensorBoardLogger(run_dir)
        try:
            result = make_trainer(parts, Path(run_dir), logger).fit()
        finally:
            logger.close()
    return parts, result


def run_bare(overrides: list[str], steps: int, same_threads: bool = False) -> float:
    """The loop a researcher would write by hand for the same run, regularizers, learning-rate
    schedule and EMA of G included: no logging at all. It runs at torch's own intra-op thread
    count, as a loop written with PyTorch's defaults does, or with ``same_threads`` at the
    count the Trainer runs this config at (trainer.threads), a like-for-like comparison. Its
    optimizers step each tensor, as torch's do when given a network's parameters, with the
    recipe's arithmetic (subnormals flushed where trainer.flush_denormal says so)."""
    p = components([*overrides, "trainer.progress=false", SEPARATE])
    trainer_threads = torch.get_num_threads()  # what building the run set (trainer.threads)
    torch.set_num_threads(trainer_threads if same_threads else TORCH_THREADS)
    try:
        return _bare_loop(p, steps)
    finally:
        torch.set_num_threads(trainer_threads)


def _bare_loop(p: Components, steps: int) -> float:
    """Steps/s of the hand-written steps alone, the run's building left out as the Trainer's
    own measurement leaves it out."""
    G, D, loss, opt_G, opt_D, data = p.G, p.D, p.loss, p.opt_G, p.opt_D, p.data
    for group in [*opt_G.param_groups, *opt_D.param_groups]:
        group["foreach"] = None  # as constructed by hand: torch picks (on a CPU, per tensor)
    batch, d_steps, z_dim = p.settings.batch_size, p.settings.d_steps, G.z_dim
    ema = EMA(G, p.settings.ema_decay) if p.settings.ema_decay else None
    needs_grad = set().union(*(r.needs_input_grad for r in p.regularizers))
    arithmetic = FlushedSubnormals() if p.settings.flush_denormal else contextlib.nullcontext()

    def d_input(x: torch.Tensor, which: str, step: int) -> torch.Tensor:
        for r in p.regularizers:
            x = r.perturb(x, step)
        return x.detach().requires_grad_(True) if which in needs_grad else x

    sync(p.device)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if p.schedule is not None:
            p.schedule.set(step)
        for _ in range(d_steps):
            with torch.no_grad():
                fake = G(torch.randn(batch, z_dim, device=p.device))
            real, fake = d_input(next(data), "real", step), d_input(fake, "fake", step)
            out_real, out_fake = D(real), D(fake)
            d_loss = loss.d_loss(out_real, out_fake)
            for r in p.regularizers:
                if (term := r.penalty(D, real, fake, out_real, out_fake)) is not None:
                    d_loss = d_loss + term
            opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            with arithmetic:
                opt_D.step()
            if p.clipper is not None:
                p.clipper()
        D.requires_grad_(False)
        fake = d_input(G(torch.randn(batch, z_dim, device=p.device)), "", step)
        g_loss = loss.g_loss(D(fake))
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        with arithmetic:
            opt_G.step()
        D.requires_grad_(True)
        if ema is not None:
            ema.update(step)
    sync(p.device)
    return steps / (time.perf_counter() - start)


def interleaved(
    variants: dict[object, Callable[[int], float]], steps: int, reps: int
) -> dict[object, list[float]]:
    """Each variant's steps/s in every repetition, after a warm-up (allocator, kernels, caches:
    a shorter run of each). The variants take turns, so that the machine's drifts hit them
    alike, in an order reversed every other repetition (A B C, C B A, ...), so that a steady
    drift does not favour the variants measured first."""
    for run in variants.values():
        run(max(10, steps // 5))
    speeds: dict[object, list[float]] = {key: [] for key in variants}
    for rep in range(reps):
        order = list(variants) if rep % 2 == 0 else list(variants)[::-1]
        for key in order:
            speeds[key].append(variants[key](steps))
    return speeds
