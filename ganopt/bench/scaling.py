"""scripts/bench.py --scaling: how the Trainer's cost and memory grow with batch size and
network width, each measurement in a process of its own so that its peak memory is its own."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from ganopt.arguments import save_figure, written
from ganopt.bench import timing
from ganopt.recorder import peak_memory_mb


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
        lambda v: [*timing.CONFIGS["dcgan"], "trainer.batch_size=64", *_widths(v)],
    ),
}
#: steps per measured run on each axis (a DCGAN step costs far more)
SCALING_STEPS = {"toy batch": 60, "toy width": 60, "dcgan width": 15}
VARIANTS = ("trainer", "bare", "per_layer_every_step")


def measure_point(variant: str, overrides: list[str], steps: int) -> dict[str, float]:
    """One variant at one point, after a warm-up, with this process's peak memory."""
    every_step = ["trainer.log_every=1", "trainer.hist_every=0", "diagnostics.shadow=false"]
    every_step.append("diagnostics.input_gradients=false")
    run = {
        "trainer": lambda n: timing.run_trainer(overrides, n),
        "bare": lambda n: timing.run_bare(overrides, n, same_threads=True),  # the fixed cost
        "per_layer_every_step": lambda n: timing.run_trainer([*overrides, *every_step], n),
    }[variant]
    run(max(5, steps // 5))
    speed = run(steps)
    device = torch.device(
        "cuda" if torch.cuda.is_available() and "cpu" not in str(overrides) else "cpu"
    )
    return {"steps_per_sec": speed, "peak_memory_mb": peak_memory_mb(device)}


def measure(base: list[str], steps: int | None, out: Path, command: list[str]) -> list[dict]:
    """Every point of every axis, each variant in a subprocess of its own: ``command`` with
    the point's JSON after it, which prints measure_point's result as its last line. Writes
    OUT/bench_scaling.csv and the plot OUT/bench_scaling.png."""
    rows = []
    for axis, (values, overrides_for) in SCALING.items():
        for value in values:
            overrides = [*overrides_for(value), *base]
            n = steps or SCALING_STEPS[axis]
            row: dict[str, object] = {"axis": axis, "value": value}
            for variant in VARIANTS:
                print(f"  {axis} {value}: {variant} ({n} steps)", file=sys.stderr, flush=True)
                point = json.dumps({"variant": variant, "overrides": overrides, "steps": n})
                done = subprocess.run([*command, point], capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                row[f"{variant}_steps_per_sec"] = result["steps_per_sec"]
                row[f"{variant}_peak_mb"] = result["peak_memory_mb"]
            row["trainer_over_bare"] = row["trainer_steps_per_sec"] / row["bare_steps_per_sec"]
            row["per_layer_cost"] = (
                1 - row["per_layer_every_step_steps_per_sec"] / row["trainer_steps_per_sec"]
            )
            rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    with written(out / "bench_scaling.csv") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    save_figure(figure(rows), out / "bench_scaling.png", 110)
    return rows


def figure(rows: list[dict]) -> Figure:
    """Steps/s against size (log-log) above, the ratios below, one column per axis."""
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


def print_table(rows: list[dict]) -> None:
    """One row per point: speeds, the ratios, and peak memory."""
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
