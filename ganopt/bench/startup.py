"""scripts/bench.py --startup: what a process costs beside its steps. A 6-step run of train.py
against ``python -c "import torch"`` (the floor every run pays) and a mistyped command line
(``loss=wgna``, refused before torch loads), each in its own process, interleaved: the
difference run − import torch is ganopt's own start-up and end, the typo's time how long a user
waits to be told (docs/performance.md, "Start-up")."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ganopt.bench import timing

TRAIN = Path(__file__).resolve().parents[2] / "train.py"
#: the default repetitions of --startup (each a few seconds)
REPS = 5
#: label: (argv after the interpreter, the exit code it must end with)
COMMANDS = {
    "import torch": (["-c", "import torch"], 0),
    "6-step run": ([str(TRAIN), "trainer.steps=6", "trainer.progress=false"], 0),
    "typo refused": ([str(TRAIN), "loss=wgna"], 2),
}


def _timed(argv: list[str], code: int, cwd: Path) -> float:
    """Seconds from start to exit of one process; timing.CommandFailed if it ended otherwise."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if proc.returncode != code:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        raise timing.CommandFailed(f"{' '.join(argv[:2])} exited {proc.returncode}: {tail}")
    return seconds


def measure(extra: list[str], reps: int) -> dict[str, object]:
    """Each command's seconds over ``reps`` interleaved repetitions (the order reversed every
    other time), in a temporary directory that each run writes its own run directory into;
    the 6-step run takes ``extra`` overrides. The load average is read before and after."""
    commands = dict(COMMANDS)
    run_argv, run_code = commands["6-step run"]
    commands["6-step run"] = ([*run_argv, *extra], run_code)
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        for argv, code in commands.values():  # a warm-up: the file system's caches
            _timed(_in_run_dir(argv, cwd, "warm-up"), code, cwd)
        for rep in range(reps):
            order = list(commands) if rep % 2 == 0 else list(commands)[::-1]
            for label in order:
                argv, code = commands[label]
                seconds[label].append(_timed(_in_run_dir(argv, cwd, str(rep)), code, cwd))
    return _summary(seconds, (load_before, os.getloadavg()[0]))


def _in_run_dir(argv: list[str], cwd: Path, name: str) -> list[str]:
    if argv[0] != str(TRAIN) or "loss=wgna" in argv:
        return argv
    return [*argv, f"hydra.run.dir={cwd / f'run_{name}'}"]


def _summary(seconds: dict[str, list[float]], load: tuple[float, float]) -> dict[str, object]:
    medians = {label: statistics.median(v) for label, v in seconds.items()}
    floor = medians["import torch"]
    return {
        "seconds": {
            label: {"median": medians[label], "min": min(v), "max": max(v), "runs": v}
            for label, v in seconds.items()
        },
        "run_minus_import_torch": medians["6-step run"] - floor,
        "typo_over_import_torch": medians["typo refused"] / floor,
        "load_average": {"before": load[0], "after": load[1]},
        "threads_of_torch": timing.TORCH_THREADS,
    }


def print_table(measured: dict[str, object]) -> None:
    """One row per command, then the two differences the goals are stated in."""
    rows = measured["seconds"]
    print("| command | median s | min s | max s |\n|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} |")
    load = measured["load_average"]
    print(
        f"\n6-step run − import torch: {measured['run_minus_import_torch']:.2f} s (goal <= 1.5 s); "
        f"typo refused / import torch: {measured['typo_over_import_torch']:.2f} (goal < 1). "
        f"Medians of {len(next(iter(rows.values()))['runs'])} interleaved repetitions; load "
        f"average {load['before']:.1f} before, {load['after']:.1f} after."
    )
