"""scripts/bench.py --breakdown: where a default run's training time goes, part by part, timed
through the run's own stopwatch (ganopt/stopwatch.py) rather than by patching its objects; and
what it costs beyond its steps in all, against a bare run of the same steps.

The parts say where the training thread spends its time. Work beside training (evaluation,
figures, log-step measurements on another thread) leaves that thread but may still slow the
steps it overlaps, which the parts count as steps; the bare run counts it: the share of the
training time a default run spends beyond its steps is 1 - (bare run's time / default run's)."""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from ganopt.bench import timing
from ganopt.components import Components
from ganopt.logger import TensorBoardLogger
from ganopt.setup.assembly import make_trainer
from ganopt.stopwatch import Stopwatch

#: the same steps with nothing beside them: no figures, evaluation, game spectrum, histograms
#: or periodic checkpoint, and scalars only at the first and the last step
BARE = [
    "trainer.figures=false",
    "trainer.sample_every=0",
    "trainer.hist_every=0",
    "trainer.eval_every=0",
    "trainer.ckpt_every=0",
    "diagnostics.game_every=0",
    f"trainer.log_every={2**31 - 1}",
]


def measure(names: list[str], base: list[str], pairs: int) -> dict[str, dict[str, object]]:
    """One run of each config, timed part by part, then ``pairs`` interleaved pairs of a
    default run and a bare one (``base``: the overrides for every run)."""
    breakdowns = {}
    for name in names:
        overrides = [*timing.CONFIGS[name], *base]
        print(f"one {name} run, timed part by part ...", file=sys.stderr)
        breakdowns[name] = measure_run(overrides)
        print(f"{pairs} pair(s) of {name} runs, default and bare ...", file=sys.stderr)
        breakdowns[name]["paired"] = against_bare(overrides, pairs)
    return breakdowns


def against_bare(overrides: list[str], pairs: int) -> dict[str, object]:
    """Training seconds of the default run and of the bare one, pair by pair (default first),
    and the share of the default's beyond its steps: 1 - the median ratio bare / default."""
    default, bare = [], []
    for _ in range(pairs):
        default.append(training_seconds(overrides))
        bare.append(training_seconds([*overrides, *BARE]))
    ratios = [b / d for b, d in zip(bare, default, strict=True)]
    return {"default": default, "bare": bare, "beyond_steps": 1 - statistics.median(ratios)}


def training_seconds(overrides: list[str]) -> float:
    """A run's training time (steps / steps_per_sec: the final figures, evaluation and game
    left out), its parts untimed."""
    parts = timing.components([*overrides, "trainer.progress=false"])
    result = _fit(parts, stopwatch=None)
    return result.step / result.metrics["steps_per_sec"]


def _fit(parts: Components, stopwatch: Stopwatch | None) -> object:
    with tempfile.TemporaryDirectory() as run_dir:
        logger = TensorBoardLogger(run_dir)
        try:
            trainer = make_trainer(parts, Path(run_dir), logger)
            if stopwatch is not None:
                trainer.time_parts(stopwatch)
            return trainer.fit()
        finally:
            logger.close()


def measure_run(overrides: list[str]) -> dict[str, object]:
    """Where the training time of one run goes, the run as ``python train.py`` makes it (its
    figures, evaluation, game spectrum and checkpoints on their default intervals): the
    training steps, timed one by one (log steps apart, with their extra measurements), and
    each part of the recorder's and the checkpointer's work, through the run's stopwatch
    (ganopt/stopwatch.py); the final step's figures and evaluation are not training time and
    are left out, as steps_per_sec leaves them out. The rest is the loop's own bookkeeping. On
    CUDA each timed part ends with a synchronization, which the run does not otherwise make."""
    parts = timing.components([*overrides, "trainer.progress=false"])
    stopwatch = Stopwatch(parts.device, running=True)
    result = _fit(parts, stopwatch)
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
        "beside": parts.beside,
        "status": result.status,
        "steps": steps,
        "training_seconds": seconds,
        "steps_per_sec": result.metrics["steps_per_sec"],
        "ms_per_plain_step": 1e3 * plain_step,
        "parts": table,
    }


def print_tables(breakdowns: dict[str, dict[str, object]]) -> None:
    """Each config's run, one table apiece."""
    for name, measured in breakdowns.items():
        print_table(name, measured)


def print_table(name: str, measured: dict[str, object]) -> None:
    """One run's parts, with each one's share of the training time."""
    total = measured["training_seconds"]
    ended = "" if measured["status"] == "ok" else f" (the run ended {measured['status']})"
    print(
        f"\n{name}: {measured['steps']} steps{ended}, {total:.1f} s of training "
        f"({measured['steps_per_sec']:.1f} steps/s; a plain step "
        f"{measured['ms_per_plain_step']:.2f} ms; work beside training: "
        f"{'on' if measured.get('beside') else 'off, no core to spare'})\n"
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
    paired = measured.get("paired")
    if paired:
        default, bare = (statistics.median(paired[k]) for k in ("default", "bare"))
        print(
            f"\nagainst a bare run of the same steps (no figures, evaluation, game, histograms "
            f"or periodic checkpoints; scalars at the first and last step only), "
            f"{len(paired['bare'])} interleaved pair(s): default {default:.1f} s, bare "
            f"{bare:.1f} s (medians); the default run spends "
            f"**{100 * paired['beyond_steps']:.1f}%** of its training time beyond its steps, "
            f"work beside training that slows the steps it overlaps included"
        )
