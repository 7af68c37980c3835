"""scripts/bench.py --suite: how long the test suite takes here, whole and its fast subset
(``-m "not slow"``), each run as docs/install.md tells a user to, in a process of its own from
the repository's root: the times that page quotes. A run that fails is reported, not timed."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ganopt.bench.timing import CommandFailed

REPO = Path(__file__).resolve().parents[2]
#: label: pytest's arguments
RUNS = {"whole suite": [], "fast subset": ["-m", "not slow"]}
#: pytest's last line: "915 passed, 19 skipped, 15 warnings in 45.37s"
SUMMARY = re.compile(r"^=*\s*(\d+ passed.*?) in [\d.]+s")


def _timed(args: list[str]) -> tuple[float, str]:
    """Seconds from start to exit of ``python -m pytest ARGS``, and what it counted (passed,
    skipped); CommandFailed if a test failed."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines() or [""]
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(['pytest', *args])} exited {proc.returncode}: {lines[-1]}")
    counted = next((m.group(1) for line in reversed(lines) if (m := SUMMARY.match(line))), "")
    return seconds, re.sub(r", \d+ warnings?", "", counted)


def measure(reps: int) -> dict[str, object]:
    """Each run's seconds over ``reps`` repetitions, alternating which comes first; the load
    average before and after, and the cores pytest-xdist's workers share."""
    seconds: dict[str, list[float]] = {label: [] for label in RUNS}
    counted: dict[str, str] = {}
    load_before = os.getloadavg()[0]
    for rep in range(reps):
        for label in list(RUNS) if rep % 2 == 0 else list(RUNS)[::-1]:
            elapsed, counted[label] = _timed(RUNS[label])
            seconds[label].append(elapsed)
    return {
        "seconds": {
            label: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
            for label, v in seconds.items()
        },
        "tests": counted,
        "cores": os.cpu_count(),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
    }


def print_table(measured: dict[str, object]) -> None:
    """One row per run: its command, the time it took, what it ran."""
    rows = measured["seconds"]
    print("| run | command | median s | min s | max s | tests |\n|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(
            f"| {label} | `{_command(label)}` | {r['median']:.0f} | {r['min']:.0f} | "
            f"{r['max']:.0f} | {measured['tests'][label]} |"
        )
    load = measured["load_average"]
    reps = len(next(iter(rows.values()))["runs"])
    print(
        f"\n{reps} run(s) of each on {measured['cores']} cores (pytest-xdist: one worker per "
        f"core, at most 4); load average {load['before']:.1f} before, {load['after']:.1f} after."
    )


def _command(label: str) -> str:
    """The run as a user types it."""
    quoted = [f'"{a}"' if " " in a else a for a in RUNS[label]]
    return " ".join(["python -m pytest", *quoted])
