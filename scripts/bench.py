"""How much the framework costs: the ganopt Trainer against a bare PyTorch loop that does the
same math, side by side in one process, as a ratio.

For each configuration (toy: the default recipe, mlp on ring8; dcgan: DCGAN on digits; plain,
only when asked: toy without R1 and EMA, the plain recipe) it alternates
    A: the Trainer with its default logging (TensorBoard, diagnostics every log_every),
    B: a hand-written loop: the same networks, losses, regularizers, optimizers, learning-rate
       schedule, EMA of G, batch size and data, without any logging, with PyTorch's defaults:
       its optimizers over each network's tensors in the implementation torch picks when none
       is asked for (the Trainer steps one buffer per network: trainer.flat_params), at
       torch's own intra-op thread count (the Trainer's is
       trainer.threads); where the two counts differ, also B at the Trainer's count, like
       for like,
    C: the Trainer logging every layer's gradient norm (and the losses, D's outputs, the
       gradient signal) at every step: log_every = 1,
    E: as C, plus the diagnostics that cost extra passes: the shadow losses' gradient norms
       (one more G backward each) and D's input gradients (three more D backwards),
A B C E, E C B A, ... (the order reversed every other time, so that a steady drift of the
machine favours no variant) after a short warm-up, and reports the median steps/s of each, the
median ratio A/B (target >= 1.05) with the range of the per-repetition ratios and the ratio of
the fastest runs (other work on the machine only slows a run down), and the cost of
per-layer diagnostics at every step, 1 - C/A (targets: <= 25% toy, <= 10% DCGAN); 1 - E/A is
reported beside it. Each configuration has its own default run length (a DCGAN step costs
about five toy steps), so that the defaults finish in about three minutes on two CPU cores;
--quick measures the toy config alone, in under a minute. Short runs weigh a run's fixed costs
(the first log step, the last step's histograms) more: compare ratios at equal lengths.

    python scripts/bench.py                      # CPU or CUDA (trainer.device=auto)
    python scripts/bench.py --quick              # fewer steps and repetitions: a rough look
    python scripts/bench.py --json --reps 5 --steps 1000
    python scripts/bench.py --device cuda --configs dcgan
    python scripts/bench.py --fused --compiled   # also trainer.fused=true, trainer.compile=true
    python scripts/bench.py --separate           # also trainer.flat_params=false
    python scripts/bench.py --subnormals         # Adam's step at step 2000, IEEE or flushed
    python scripts/bench.py --scaling            # cost against batch size and network width
    python scripts/bench.py --threads            # steps/s at each CPU thread count
    python scripts/bench.py --breakdown          # where a default run's training time goes

--scaling measures the Trainer, the bare loop (at the Trainer's thread count: what the
framework adds) and the Trainer with per-layer diagnostics at every step, each in a process of
its own (so that its peak memory is its own: RSS on a CPU, the CUDA allocator's peak on a GPU),
along three axes: toy batch 64 to 4096, toy MLP width 128 to
1024 (batch 256), DCGAN width 16 to 128 (batch 64); it writes OUT/bench_scaling.csv and a
log-log plot OUT/bench_scaling.png.

--breakdown times one run as train.py makes it, at its own length (toy: 5000 steps), part by
part: the steps (log steps apart), the TensorBoard writes, the sample and gradient-flow figures,
evaluation, the game's spectrum and checkpoints on their default intervals (the other modes
leave evaluation and the game out), and the rest, the loop's own bookkeeping.

Steps/s are generator steps per second of training proper (the Trainer's own measurement, which
leaves out start-up, the final figure and the final evaluation).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ganopt.arguments import output_dir
from ganopt.components import Components
from ganopt.composition import compose_config
from ganopt.config import ConfigError
from ganopt.ema import EMA
from ganopt.logger import TensorBoardLogger
from ganopt.optimizers import FlushedSubnormals
from ganopt.rundir import WriteError
from ganopt.setup.assembly import build, make_trainer
from ganopt.stopwatch import Stopwatch
from ganopt.tables import add_table_argument, printed, write_table
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
#: --threads measures these (a small MLP, small convolutions, a large MLP)
THREAD_CONFIGS = ("toy", "dcgan", "wide")
#: interleaved repetitions: (default, --quick)
REPS = (3, 2)
#: --rules: the update rules of docs/game.md, each against the default
#: (alternating Adam) on the toy config: (label, overrides, gradient evaluations per step)
RULES = {
    "alternating": ("alternating Adam (the default)", [], 1),
    "simultaneous": ("simultaneous Adam", ["trainer.update=simultaneous"], 1),
    "extra_adam": ("Extra-Adam", ["optim=extra_adam"], 2),
    "optimistic_adam": ("Optimistic Adam", ["optim=optimistic_adam"], 1),
    "consensus": ("consensus beside R1 (double backward)", ["+reg@reg2=consensus"], 1),
}


def components(overrides: list[str]) -> Components:
    """A run built as train.py builds it. Each starts from torch's own thread count, which
    trainer.threads then sets or leaves (not from the count an earlier run in this process set)."""
    torch.set_num_threads(TORCH_THREADS)
    return build(compose_config(overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: the settings of --compiled
COMPILED = ("trainer.compile=true", "trainer.cuda_graphs=true")
#: the setting of --fused
FUSED = "trainer.fused=true"
#: the setting of --separate: each optimizer over its network's separate tensors
SEPARATE = "trainer.flat_params=false"
#: --subnormals: the run's length, and timed optimizer steps per variant and repetition
SUBNORMAL_STEPS, SUBNORMAL_TIMINGS = 2000, 20
FLUSH_DENORMAL = "trainer.flush_denormal=true"


def run_trainer(overrides: list[str], steps: int) -> float:
    """Generator steps per second of a real run (its own measurement); NaN for a compiled one
    that fell back to eager passes, which would measure something else."""
    _, result = trained(overrides, steps)
    compiled = any(o in COMPILED for o in overrides)
    if compiled and "compile_seconds" not in result.metrics:
        return math.nan  # torch.compile failed on this model and the run fell back to eager
    return float(result.metrics["steps_per_sec"])


def trained(overrides: list[str], steps: int) -> tuple[Components, RunResult]:
    """A real run in a temporary directory, and what it was built from. The game's spectrum
    at the end of a run is not training, and not timed: it is left out unless asked for."""
    parts = components(
        [
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
    optimizers step each tensor, as torch's do when given a network's parameters."""
    p = components([*overrides, "trainer.progress=false", SEPARATE])
    trainer_threads = torch.get_num_threads()  # what building the run set (trainer.threads)
    torch.set_num_threads(trainer_threads if same_threads else TORCH_THREADS)
    try:
        return _bare_loop(p, steps)
    finally:
        torch.set_num_threads(trainer_threads)


def _bare_loop(p: Components, steps: int) -> float:
    G, D, loss, opt_G, opt_D, data = p.G, p.D, p.loss, p.opt_G, p.opt_D, p.data
    for group in [*opt_G.param_groups, *opt_D.param_groups]:
        group["foreach"] = None  # as constructed by hand: torch picks (on a CPU, per tensor)
    batch, d_steps, z_dim = p.settings.batch_size, p.settings.d_steps, G.z_dim
    ema = EMA(G, p.settings.ema_decay) if p.settings.ema_decay else None
    needs_grad = set().union(*(r.needs_input_grad for r in p.regularizers))

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
            opt_D.step()
            if p.clipper is not None:
                p.clipper()
        D.requires_grad_(False)
        fake = d_input(G(torch.randn(batch, z_dim, device=p.device)), "", step)
        g_loss = loss.g_loss(D(fake))
        opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
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


def bench(
    name: str, overrides: list[str], steps: int, reps: int, opt_in: list[str] = ()
) -> dict[str, object]:
    """The variants above, interleaved; ``opt_in`` adds a Trainer run with each of these
    settings (trainer.fused=true, trainer.compile=true, trainer.cuda_graphs=true), any
    compilation left out."""
    every_step = [*overrides, "trainer.log_every=1", "trainer.hist_every=0"]
    per_layer = [*every_step, "diagnostics.shadow=false", "diagnostics.input_gradients=false"]
    runs = {
        "trainer": overrides,
        "per_layer_every_step": per_layer,
        "everything_every_step": every_step,
    }
    opt_in_runs = {_key(setting): [*overrides, setting] for setting in opt_in}
    runs |= opt_in_runs
    components(overrides)
    threads = {"bare": TORCH_THREADS, "trainer": torch.get_num_threads()}
    variants = {"bare": lambda n: run_bare(overrides, n)}
    if threads["trainer"] != threads["bare"]:  # and like for like: what the rest costs
        variants["bare_same_threads"] = lambda n: run_bare(overrides, n, same_threads=True)
    variants |= {key: lambda n, o=run: run_trainer(o, n) for key, run in runs.items()}
    speeds = interleaved(variants, steps, reps)

    def over_bare(variant: str, bare: str = "bare") -> list[float]:
        return [t / b for t, b in zip(speeds[variant], speeds[bare], strict=True)]

    def cost(variant: str) -> float:
        pairs = zip(speeds[variant], speeds["trainer"], strict=True)
        return statistics.median(1 - v / t for v, t in pairs)

    def best(variant: str, bare: str = "bare") -> float:
        """The fastest run's speed over the bare loop's fastest: other work on the machine
        only slows runs down, so the fastest are the least disturbed (why timeit reports a
        minimum)."""
        return max(speeds[variant]) / max(speeds[bare])

    ratios = over_bare("trainer")
    same = over_bare("trainer", "bare_same_threads") if "bare_same_threads" in speeds else None
    return {
        "config": name,
        "threads": threads,
        "steps_per_sec": {key: statistics.median(v) for key, v in speeds.items()},
        "trainer_over_bare": statistics.median(ratios),
        "trainer_over_bare_range": [min(ratios), max(ratios)],
        "trainer_over_bare_best": best("trainer"),
        "trainer_over_bare_same_threads": same
        and {
            "median": statistics.median(same),
            "range": [min(same), max(same)],
            "best": best("trainer", "bare_same_threads"),
        },
        "per_layer_cost": cost("per_layer_every_step"),
        "everything_cost": cost("everything_every_step"),
        "opt_in_over_bare": {key: statistics.median(over_bare(key)) for key in opt_in_runs},
        "opt_in_over_bare_range": {
            key: [min(over_bare(key)), max(over_bare(key))] for key in opt_in_runs
        },
        "opt_in_over_bare_best": {key: best(key) for key in opt_in_runs},
        "runs": speeds,
    }


def _key(setting: str) -> str:
    """trainer.compile=true -> compile; trainer.flat_params=false -> separate"""
    return "separate" if setting == SEPARATE else setting.split("=")[0].split(".")[-1]


def _widths(v: int) -> list[str]:
    return [f"model.g.width={v}", f"model.d.width={v}"]


#: --scaling's axes: (axis, its values, overrides for a value)
SCALING = {
    "toy batch": ((64, 256, 1024, 4096), lambda v: [f"trainer.batch_size={v}"]),
    "toy width": (
        (128, 256, 512, 1024),
        lambda v: [f"model.g.hidden=[{v},{v},{v}]", f"model.d.hidden=[{v},{v},{v}]"],
    ),
    "dcgan width": (
        (16, 32, 64, 128),
        lambda v: [*CONFIGS["dcgan"], "trainer.batch_size=64", *_widths(v)],
    ),
}
#: steps per measured run on each axis (a DCGAN step costs far more)
SCALING_STEPS = {"toy batch": 60, "toy width": 60, "dcgan width": 15}
VARIANTS = ("trainer", "bare", "per_layer_every_step")


def measure_point(variant: str, overrides: list[str], steps: int) -> dict[str, float]:
    """One variant at one point, after a warm-up, with this process's peak memory."""
    from ganopt.recorder import peak_memory_mb

    every_step = ["trainer.log_every=1", "trainer.hist_every=0", "diagnostics.shadow=false"]
    every_step.append("diagnostics.input_gradients=false")
    run = {
        "trainer": lambda n: run_trainer(overrides, n),
        "bare": lambda n: run_bare(overrides, n, same_threads=True),  # the fixed cost's trend
        "per_layer_every_step": lambda n: run_trainer([*overrides, *every_step], n),
    }[variant]
    run(max(5, steps // 5))
    speed = run(steps)
    device = torch.device(
        "cuda" if torch.cuda.is_available() and "cpu" not in str(overrides) else "cpu"
    )
    return {"steps_per_sec": speed, "peak_memory_mb": peak_memory_mb(device)}


def bench_scaling(device: list[str], extra: list[str], steps: int | None, out: Path) -> list[dict]:
    """Every point of every axis, each variant in a subprocess of its own."""
    import csv
    import subprocess

    rows = []
    for axis, (values, overrides_for) in SCALING.items():
        for value in values:
            overrides = [*overrides_for(value), *device, *extra]
            n = steps or SCALING_STEPS[axis]
            row: dict[str, object] = {"axis": axis, "value": value}
            for variant in VARIANTS:
                print(f"  {axis} {value}: {variant} ({n} steps)", file=sys.stderr, flush=True)
                point = json.dumps({"variant": variant, "overrides": overrides, "steps": n})
                done = subprocess.run(
                    [sys.executable, __file__, "--point", point],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                row[f"{variant}_steps_per_sec"] = result["steps_per_sec"]
                row[f"{variant}_peak_mb"] = result["peak_memory_mb"]
            row["trainer_over_bare"] = row["trainer_steps_per_sec"] / row["bare_steps_per_sec"]
            row["per_layer_cost"] = (
                1 - row["per_layer_every_step_steps_per_sec"] / row["trainer_steps_per_sec"]
            )
            rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "bench_scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    scaling_figure(rows).savefig(out / "bench_scaling.png", dpi=110)
    return rows


def scaling_figure(rows: list[dict]):
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, len(SCALING), squeeze=False)
    for column, axis in enumerate(SCALING):
        points = [r for r in rows if r["axis"] == axis]
        values = [r["value"] for r in points]
        top, bottom = axes[0][column], axes[1][column]
        for variant, label in zip(
            VARIANTS, ("Trainer", "bare loop", "per-layer every step"), strict=True
        ):
            top.loglog(values, [r[f"{variant}_steps_per_sec"] for r in points], "o-", label=label)
        top.set(title=axis, ylabel="steps/s", xscale="log")
        bottom.semilogx(
            values, [r["trainer_over_bare"] for r in points], "o-", label="Trainer / bare"
        )
        bottom.semilogx(values, [r["per_layer_cost"] for r in points], "s-", label="per-layer cost")
        bottom.axhline(1.0, color="0.7", lw=0.8)
        bottom.set(xlabel=axis, ylabel="ratio")
        for ax in (top, bottom):  # the measured sizes as plain numbers, no crowded minor labels
            ax.set_xticks(values, [str(v) for v in values])
            ax.xaxis.set_minor_formatter(NullFormatter())
        top.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        top.yaxis.set_major_formatter(ScalarFormatter())
        top.yaxis.set_minor_formatter(NullFormatter())
        if column == 0:
            top.legend(fontsize=8)
            bottom.legend(fontsize=8)
    return fig


def print_scaling(rows: list[dict]) -> None:
    print(
        "| axis | value | bare steps/s | Trainer steps/s | Trainer / bare | per-layer cost "
        "| peak MB (Trainer / bare) |\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['axis']} | {r['value']} | {r['bare_steps_per_sec']:.1f} | "
            f"{r['trainer_steps_per_sec']:.1f} | {r['trainer_over_bare']:.2f} | "
            f"{100 * r['per_layer_cost']:.1f}% | "
            f"{r['trainer_peak_mb']:.0f} / {r['bare_peak_mb']:.0f} |"
        )


def thread_counts() -> list[int]:
    """1, 2, 4 ... up to torch's own default (one thread per core), which is always included."""
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n < TORCH_THREADS]
    return [*counts, TORCH_THREADS]


def bench_threads(
    names: list[str], base: list[str], steps: dict[str, int], reps: int
) -> list[dict[str, object]]:
    """The Trainer's steps/s for each config at each intra-op thread count, interleaved, beside
    the count that trainer.threads=auto runs it at."""
    rows = []
    for name in names:
        overrides = [*CONFIGS[name], *base]
        parts = components(overrides)
        auto = torch.get_num_threads()
        counts = thread_counts()
        print(f"threads {counts} on {name} ({steps[name]} steps x {reps}) ...", file=sys.stderr)
        variants = {
            n: lambda k, o=(*overrides, f"trainer.threads={n}"): run_trainer(list(o), k)
            for n in counts
        }
        speeds = interleaved(variants, steps[name], reps)
        medians = {n: statistics.median(v) for n, v in speeds.items()}
        rows.append(
            {
                "config": name,
                "parameters": sum(
                    p.numel() for p in (*parts.G.parameters(), *parts.D.parameters())
                ),
                "steps_per_sec": medians,
                "runs": speeds,
                "fastest": max(medians, key=medians.__getitem__),
                "auto": auto,
            }
        )
    return rows


def print_threads(rows: list[dict[str, object]]) -> None:
    counts = list(rows[0]["steps_per_sec"])
    cells = " | ".join(f"{n} thread{'s' * (n > 1)}" for n in counts)
    print(f"| config | parameters | {cells} | fastest | `auto` runs at |")
    print("|---|---|" + "---|" * len(counts) + "---|---|")
    for r in rows:
        speeds = " | ".join(f"{r['steps_per_sec'][n]:.1f}" for n in counts)
        print(f"| {r['config']} | {r['parameters']:,} | {speeds} | {r['fastest']} | {r['auto']} |")


def bench_rules(overrides: list[str], steps: int, reps: int) -> dict[str, object]:
    """Trainer steps/s of each update rule, interleaved, and its cost per step against the
    default's (the ratio of the medians of the per-repetition ratios)."""
    variants = {
        name: lambda n, rule=rule: run_trainer([*overrides, *rule], n)
        for name, (_, rule, _) in RULES.items()
    }
    speeds = interleaved(variants, steps, reps)
    base = speeds["alternating"]
    return {
        name: {
            "steps_per_sec": statistics.median(v),
            "time_per_step_vs_default": statistics.median(
                b / x for x, b in zip(v, base, strict=True)
            ),
            "gradient_evaluations": RULES[name][2],
        }
        for name, v in speeds.items()
    }


def print_rules(rules: dict[str, dict[str, float]]) -> None:
    print(
        "| update rule | steps/s | time per step vs the default | gradient evaluations per "
        "step |\n|---|---|---|---|"
    )
    for name, r in rules.items():
        print(
            f"| {RULES[name][0]} | {r['steps_per_sec']:.1f} | "
            f"{r['time_per_step_vs_default']:.2f}x | {r['gradient_evaluations']} |"
        )


def bench_subnormals(overrides: list[str], steps: int, reps: int) -> dict[str, object]:
    """Each optimizer's step at the end of a run ``steps`` long, from that run's state and
    gradients, with IEEE arithmetic and with subnormals flushed (trainer.flush_denormal), in
    turns, ``reps`` x SUBNORMAL_TIMINGS times each: timings a millisecond long, side by side,
    which the machine's drift cannot tell apart as it does whole runs. Also the share of the
    optimizer's moments that are subnormal, the run's own time per generator step, and
    whether the same run trained with trainer.flush_denormal=true ends with the same weights."""
    parts, result = trained([*overrides, "trainer.sample_every=0"], steps)
    flushed_run, _ = trained([*overrides, "trainer.sample_every=0", FLUSH_DENORMAL], steps)
    same_weights = all(
        torch.equal(a, b) for a, b in zip(_weights(parts), _weights(flushed_run), strict=True)
    )
    arithmetic = {"ieee": contextlib.nullcontext(), "flushed": FlushedSubnormals()}
    networks = {}
    for network, optimizer in (("G", parts.opt_G), ("D", parts.opt_D)):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        weights, state = [p.detach().clone() for p in params], copy.deepcopy(optimizer.state_dict())
        times: dict[str, list[float]] = {mode: [] for mode in arithmetic}
        for rep in range(reps * SUBNORMAL_TIMINGS):
            for mode in list(arithmetic) if rep % 2 == 0 else list(arithmetic)[::-1]:
                with torch.no_grad():
                    torch._foreach_copy_(params, weights)
                optimizer.load_state_dict(copy.deepcopy(state))  # a step changes it in place
                start = time.perf_counter()
                with arithmetic[mode]:
                    optimizer.step()
                times[mode].append(time.perf_counter() - start)
        moments = [t for s in state["state"].values() for t in s.values() if t.dim() > 0]
        subnormal = sum(
            int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum()) for t in moments
        )
        networks[network] = {
            "subnormal_share": subnormal / max(1, sum(t.numel() for t in moments)),
            "ms": {mode: 1e3 * statistics.median(v) for mode, v in times.items()},
        }
    return {
        "steps": steps,
        "ms_per_generator_step": 1e3 / result.metrics["steps_per_sec"],
        "d_steps": parts.settings.d_steps,
        "networks": networks,
        "same_weights_when_flushed": same_weights,
    }


def _weights(parts: Components) -> list[torch.Tensor]:
    return [p.detach() for p in [*parts.G.parameters(), *parts.D.parameters()]]


def print_subnormals(measured: dict[str, object]) -> None:
    print(
        "| optimizer | subnormal share of its state | step, IEEE (ms) | step, flushed (ms) | "
        "flushed / IEEE |\n|---|---|---|---|---|"
    )
    saved = 0.0
    for network, r in measured["networks"].items():
        ieee, flushed = r["ms"]["ieee"], r["ms"]["flushed"]
        saved += (ieee - flushed) * (measured["d_steps"] if network == "D" else 1)
        print(
            f"| {network} | {100 * r['subnormal_share']:.1f}% | {ieee:.3f} | {flushed:.3f} | "
            f"{flushed / ieee:.2f} |"
        )
    step = measured["ms_per_generator_step"]
    print(
        f"\nafter {measured['steps']} steps; a generator step of that run took {step:.2f} ms "
        f"on average: flushing saves {saved:.2f} ms of it ({100 * saved / step:.1f}%)"
    )
    same = measured["same_weights_when_flushed"]
    print(
        "the same run with trainer.flush_denormal=true ends with "
        + ("the same weights, bit for bit" if same else "different weights")
    )


def bench_breakdown(overrides: list[str]) -> dict[str, object]:
    """Where the training time of one run goes, the run as ``python train.py`` makes it (its
    figures, evaluation, game spectrum and checkpoints on their default intervals): the
    training steps, timed one by one (log steps apart, with their extra measurements), and
    each part of the recorder's and the checkpointer's work, through the run's stopwatch
    (ganopt/stopwatch.py); the final step's figures and evaluation are not training time and
    are left out, as steps_per_sec leaves them out. The rest is the loop's own bookkeeping. On
    CUDA each timed part ends with a synchronization, which the run does not otherwise make."""
    parts = components([*overrides, "trainer.progress=false"])
    stopwatch = Stopwatch(parts.device, running=True)
    with tempfile.TemporaryDirectory() as run_dir:
        logger = TensorBoardLogger(run_dir)
        try:
            trainer = make_trainer(parts, Path(run_dir), logger)
            trainer.time_parts(stopwatch)
            result = trainer.fit()
        finally:
            logger.close()
    spent = dict(stopwatch.spent)
    steps = result.step  # a run that diverged stopped early
    seconds = steps / result.metrics["steps_per_sec"]
    plain = spent.pop("steps")
    plain_step = statistics.median(plain)
    logged = spent.pop("log steps", [])
    rows = {
        "steps between log steps": plain,
        "log steps at a plain step's cost": [plain_step] * len(logged),
        "log steps' measurements beyond it": [t - plain_step for t in logged],
        **spent,
    }
    table = {part: {"calls": len(v), "seconds": sum(v)} for part, v in rows.items()}
    rest = seconds - sum(row["seconds"] for row in table.values())
    table["the loop's own bookkeeping (the rest)"] = {"calls": steps, "seconds": rest}
    return {
        "status": result.status,
        "steps": steps,
        "training_seconds": seconds,
        "steps_per_sec": result.metrics["steps_per_sec"],
        "ms_per_plain_step": 1e3 * plain_step,
        "parts": table,
    }


def print_breakdown(name: str, measured: dict[str, object]) -> None:
    total = measured["training_seconds"]
    ended = "" if measured["status"] == "ok" else f" (the run ended {measured['status']})"
    print(
        f"\n{name}: {measured['steps']} steps{ended}, {total:.1f} s of training "
        f"({measured['steps_per_sec']:.1f} steps/s; a plain step "
        f"{measured['ms_per_plain_step']:.2f} ms)\n"
    )
    print("| part of the training time | calls | seconds | share |\n|---|---|---|---|")
    for part, row in measured["parts"].items():
        print(
            f"| {part} | {row['calls']} | {row['seconds']:.2f} | "
            f"{100 * row['seconds'] / total:.1f}% |"
        )
    parts = measured["parts"]
    plain = sum(
        parts[k]["seconds"] for k in ("steps between log steps", "log steps at a plain step's cost")
    )
    print(
        f"\nevery step at a plain step's cost: {100 * plain / total:.1f}% of the training time; "
        f"logging, figures, evaluation, the game and checkpoints: {100 * (1 - plain / total):.1f}%"
    )


def print_same_threads(results: list[dict[str, object]]) -> None:
    """The Trainer against the bare loop at the Trainer's own thread count, where it differs
    from torch's: what the framework costs apart from its thread policy."""
    rows = [r for r in results if r["trainer_over_bare_same_threads"]]
    if not rows:
        return
    print(
        "\n| config | bare loop at the Trainer's threads | Trainer | Trainer / it (range) "
        "| fastest / fastest |\n|---|---|---|---|---|"
    )
    for r in rows:
        s, same = r["steps_per_sec"], r["trainer_over_bare_same_threads"]
        low, high = same["range"]
        print(
            f"| {r['config']} ({r['threads']['trainer']} thread"
            f"{'s' * (r['threads']['trainer'] > 1)}) | {s['bare_same_threads']:.1f} | "
            f"{s['trainer']:.1f} | {same['median']:.3f} ({low:.2f}–{high:.2f}) | "
            f"{same['best']:.3f} |"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.table is None or args.json or args.point:
        return measure(p, args)
    with printed() as tables:
        code = measure(p, args)
    if code == 0:
        device = "cuda" if "cuda" in args.device else "cpu"
        if args.device == "auto" and torch.cuda.is_available():
            device = "cuda"
        write_table(args.table, tables.getvalue(), device)
    return code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--steps", type=int, help="generator steps per measured run (default: toy 250, dcgan 50)"
    )
    p.add_argument("--reps", type=int, help=f"interleaved repetitions (default {REPS[0]})")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the toy config only (unless --configs), 100 steps, 2 repetitions: a rough look",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--configs",
        help=f"which of: {', '.join(CONFIGS)} (default: {','.join(DEFAULT_CONFIGS)})",
    )
    p.add_argument("--extra", nargs="*", default=[], help="overrides for every run")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--compiled",
        action="store_true",
        help="also trainer.compile=true (and trainer.cuda_graphs=true on CUDA) against bare",
    )
    p.add_argument(
        "--fused",
        action="store_true",
        help="also trainer.fused=true (torch's fused optimizer kernels) against bare",
    )
    p.add_argument(
        "--separate",
        action="store_true",
        help="also trainer.flat_params=false (optimizers over separate tensors) against bare",
    )
    p.add_argument(
        "--subnormals",
        action="store_true",
        help="instead: each optimizer step at the end of a toy run (--steps, default "
        f"{SUBNORMAL_STEPS}), IEEE against trainer.flush_denormal",
    )
    p.add_argument("--scaling", action="store_true", help="instead: cost against size (above)")
    p.add_argument("--out", type=Path, default=Path("outputs/bench"), help="--scaling's files")
    p.add_argument("--point", help=argparse.SUPPRESS)  # one --scaling measurement (a subprocess)
    p.add_argument(
        "--threads",
        action="store_true",
        help="instead: Trainer steps/s at each CPU thread count (toy, dcgan, wide), and what "
        "trainer.threads=auto picks",
    )
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="instead: where one run's training time goes (steps, log steps, figures, "
        "evaluation, the game's spectrum, checkpoints) at the config's own trainer.steps "
        "(default: toy, 5000 steps)",
    )
    p.add_argument(
        "--rules",
        action="store_true",
        help="instead: each update rule's steps/s on the toy config against the default's",
    )
    add_table_argument(p)
    return p


def measure(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    default = THREAD_CONFIGS if args.threads else DEFAULT_CONFIGS
    configs = args.configs or ("toy" if args.quick else ",".join(default))
    names = [n.strip() for n in configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    reps = args.reps or REPS[args.quick]
    if unknown or (args.steps is not None and args.steps < 10) or reps < 1:
        p.error(f"unknown configs {unknown}" if unknown else "--steps >= 10 and --reps >= 1")
    steps = {name: args.steps or STEPS[name][args.quick] for name in names}

    device = ["trainer.device=" + args.device]
    if args.point:
        point = json.loads(args.point)
        print(json.dumps(measure_point(point["variant"], point["overrides"], point["steps"])))
        return 0
    on_cpu = args.device in ("auto", "cpu")
    if args.threads and not on_cpu:
        p.error("--threads measures the CPU: leave --device out")
    if args.subnormals and (not on_cpu or args.configs):
        p.error("--subnormals measures the toy config on the CPU: leave --device, --configs out")
    try:  # a bad --extra, --device or --out fails here, in one line, before anything is measured
        for name in names:
            components([*CONFIGS[name], *device, *args.extra])
        if args.scaling:
            output_dir(args.out)
    except (ConfigError, WriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.scaling:
        rows = bench_scaling(device, args.extra, args.steps, args.out)
        print(json.dumps(rows, indent=2)) if args.json else print_scaling(rows)
        print(f"\nwrote {args.out / 'bench_scaling.csv'} and {args.out / 'bench_scaling.png'}")
        return 0
    if args.threads:
        rows = bench_threads(names, ["trainer.device=cpu", *args.extra], steps, reps)
        print(json.dumps(rows, indent=2)) if args.json else print_threads(rows)
        return 0
    if args.subnormals:
        cpu = ["trainer.device=cpu", *CONFIGS["toy"], *args.extra]
        measured = bench_subnormals(cpu, args.steps or SUBNORMAL_STEPS, reps)
        print(json.dumps(measured, indent=2)) if args.json else print_subnormals(measured)
        return 0
    if args.breakdown:
        length = [f"trainer.steps={args.steps}"] if args.steps else []  # else the config's own
        breakdowns = {}
        for name in names if args.configs else ["toy"]:
            print(f"one {name} run, timed part by part ...", file=sys.stderr)
            breakdowns[name] = bench_breakdown([*CONFIGS[name], *device, *args.extra, *length])
        if args.json:
            print(json.dumps(breakdowns, indent=2))
        else:
            for name, measured in breakdowns.items():
                print_breakdown(name, measured)
        return 0
    if args.rules:
        rules = bench_rules([*device, *args.extra], args.steps or STEPS["toy"][args.quick], reps)
        print(json.dumps(rules, indent=2)) if args.json else print_rules(rules)
        return 0
    opt_in = [SEPARATE] if args.separate else []
    opt_in += [FUSED] if args.fused else []
    if args.compiled:  # CUDA graphs where the runs are on a GPU
        on_cuda = "cuda" in args.device or (args.device == "auto" and torch.cuda.is_available())
        opt_in += COMPILED if on_cuda else COMPILED[:1]
    results = []
    started = time.perf_counter()
    for name in names:
        print(f"benchmarking {name} ({steps[name]} steps x {reps}) ...", file=sys.stderr)
        overrides = [*CONFIGS[name], *device, *args.extra]
        results.append(bench(name, overrides, steps[name], reps, opt_in))
    minutes = (time.perf_counter() - started) / 60
    machine = {
        "torch": torch.__version__,
        "threads": TORCH_THREADS,  # torch's own; each result says what its runs used
        "device": torch.cuda.get_device_name()
        if "cuda" in str(args.device) or (args.device == "auto" and torch.cuda.is_available())
        else "cpu",
    }
    if args.json:
        print(json.dumps({"machine": machine, "minutes": minutes, "results": results}, indent=2))
        return 0
    lengths = ", ".join(f"{name} {n} steps" for name, n in steps.items())
    trainer_threads = ", ".join(f"{r['config']} {r['threads']['trainer']}" for r in results)
    print(
        f"\n{machine['device']}, torch {machine['torch']}; {lengths} x {reps} interleaved "
        f"repetitions (medians), {minutes:.1f} minutes; threads: the bare loop torch's own "
        f"{TORCH_THREADS}, the Trainer trainer.threads ({trainer_threads})\n"
    )
    print(
        "| config | bare loop | Trainer | Trainer / bare (range) | fastest / fastest "
        "| per-layer diagnostics every step | their cost | every diagnostic every step | its cost |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s, (low, high) = r["steps_per_sec"], r["trainer_over_bare_range"]
        print(
            f"| {r['config']} | {s['bare']:.1f} | {s['trainer']:.1f} | "
            f"{r['trainer_over_bare']:.3f} ({low:.2f}–{high:.2f}) | "
            f"{r['trainer_over_bare_best']:.3f} | "
            f"{s['per_layer_every_step']:.1f} | "
            f"{100 * r['per_layer_cost']:.1f}% | {s['everything_every_step']:.1f} | "
            f"{100 * r['everything_cost']:.1f}% |"
        )
    print_same_threads(results)
    if opt_in:
        keys = [_key(setting) for setting in opt_in]
        print(
            "\n| config | bare loop | "
            + " | ".join(f"{k} | {k} / bare (range) | fastest / fastest" for k in keys)
            + " |"
        )
        print("|---|---|" + "---|---|---|" * len(keys))
        for r in results:
            s, ratios, ranges, fastest = (
                r["steps_per_sec"],
                r["opt_in_over_bare"],
                r["opt_in_over_bare_range"],
                r["opt_in_over_bare_best"],
            )
            cells = " | ".join(
                "fell back to eager | – | –"
                if math.isnan(s[k])
                else f"{s[k]:.1f} | {ratios[k]:.3f} ({ranges[k][0]:.2f}–{ranges[k][1]:.2f}) | "
                f"{fastest[k]:.3f}"
                for k in keys
            )
            print(f"| {r['config']} | {s['bare']:.1f} | {cells} |")
    print("\n(steps/s: generator steps per second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
