"""scripts/bench.py's default mode: what the Trainer costs against the bare loop, and what its
diagnostics at every step and any opt-in settings cost, measured side by side."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable

import torch

from ganopt.bench import timing

#: the setting of --fused
FUSED = "trainer.fused=true"


def opt_in_settings(separate: bool, fused: bool, compiled: bool, cuda: bool) -> list[str]:
    """The settings of --separate, --fused and --compiled, each measured in a Trainer run of
    its own; compiling adds CUDA graphs where the runs are on a GPU."""
    settings = [timing.SEPARATE] if separate else []
    settings += [FUSED] if fused else []
    if compiled:
        settings += timing.COMPILED if cuda else timing.COMPILED[:1]
    return settings


def measure(
    names: list[str],
    base: list[str],
    steps: dict[str, int],
    reps: int,
    opt_in: list[str],
    cuda: bool,
) -> dict[str, object]:
    """Each config's comparison, with the machine and the minutes it took: the JSON report
    (``base``: the overrides for every run)."""
    results = []
    started = time.perf_counter()
    for name in names:
        print(f"benchmarking {name} ({steps[name]} steps x {reps}) ...", file=sys.stderr)
        overrides = [*timing.CONFIGS[name], *base]
        results.append(measure_config(name, overrides, steps[name], reps, opt_in))
    minutes = (time.perf_counter() - started) / 60
    machine = {
        "torch": torch.__version__,
        "threads": timing.TORCH_THREADS,  # torch's own; each result says what its runs used
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }
    return {"machine": machine, "minutes": minutes, "results": results}


def measure_config(
    name: str, overrides: list[str], steps: int, reps: int, opt_in: list[str]
) -> dict[str, object]:
    """The variants of scripts/bench.py, interleaved; ``opt_in`` adds a Trainer run with each
    of these settings (trainer.fused=true, trainer.compile=true, trainer.cuda_graphs=true), any
    compilation left out."""
    timing.components(overrides)  # sets the Trainer's thread count (trainer.threads)
    threads = {"bare": timing.TORCH_THREADS, "trainer": torch.get_num_threads()}
    speeds = timing.interleaved(_variants(overrides, opt_in, threads), steps, reps)
    keys = [_key(setting) for setting in opt_in]
    return {"config": name, "threads": threads, **_summary(speeds, keys)}


def _variants(
    overrides: list[str], opt_in: list[str], threads: dict[str, int]
) -> dict[str, Callable[[int], float]]:
    """The bare loop (where the Trainer's thread count differs from torch's, also at the
    Trainer's: like for like, what the rest costs), then the Trainer's runs."""
    every_step = [*overrides, "trainer.log_every=1", "trainer.hist_every=0"]
    per_layer = [*every_step, "diagnostics.shadow=false", "diagnostics.input_gradients=false"]
    runs = {
        "trainer": overrides,
        "per_layer_every_step": per_layer,
        "everything_every_step": every_step,
    }
    runs |= {_key(setting): [*overrides, setting] for setting in opt_in}
    variants = {"bare": lambda n: timing.run_bare(overrides, n)}
    if threads["trainer"] != threads["bare"]:
        variants["bare_same_threads"] = lambda n: timing.run_bare(overrides, n, same_threads=True)
    variants |= {key: lambda n, o=run: timing.run_trainer(o, n) for key, run in runs.items()}
    return variants


def _summary(speeds: dict[str, list[float]], opt_in: list[str]) -> dict[str, object]:
    """Medians, the ranges of the per-repetition ratios, and the ratios of the fastest runs."""
    ratios = _over_bare(speeds, "trainer")
    same = None
    if "bare_same_threads" in speeds:
        same = _over_bare(speeds, "trainer", "bare_same_threads")
    return {
        "steps_per_sec": {key: statistics.median(v) for key, v in speeds.items()},
        "trainer_over_bare": statistics.median(ratios),
        "trainer_over_bare_range": [min(ratios), max(ratios)],
        "trainer_over_bare_best": _best(speeds, "trainer"),
        "trainer_over_bare_same_threads": same
        and {
            "median": statistics.median(same),
            "range": [min(same), max(same)],
            "best": _best(speeds, "trainer", "bare_same_threads"),
        },
        "per_layer_cost": _cost(speeds, "per_layer_every_step"),
        "everything_cost": _cost(speeds, "everything_every_step"),
        "opt_in_over_bare": {key: statistics.median(_over_bare(speeds, key)) for key in opt_in},
        "opt_in_over_bare_range": {
            key: [min(_over_bare(speeds, key)), max(_over_bare(speeds, key))] for key in opt_in
        },
        "opt_in_over_bare_best": {key: _best(speeds, key) for key in opt_in},
        "runs": speeds,
    }


def _over_bare(speeds: dict[str, list[float]], variant: str, bare: str = "bare") -> list[float]:
    """Each repetition's ratio: a drift of the machine hits a repetition's runs alike."""
    return [t / b for t, b in zip(speeds[variant], speeds[bare], strict=True)]


def _cost(speeds: dict[str, list[float]], variant: str) -> float:
    """What a variant's extra work costs the Trainer: the median of 1 - variant / Trainer."""
    pairs = zip(speeds[variant], speeds["trainer"], strict=True)
    return statistics.median(1 - v / t for v, t in pairs)


def _best(speeds: dict[str, list[float]], variant: str, bare: str = "bare") -> float:
    """The fastest run's speed over the bare loop's fastest: other work on the machine only
    slows runs down, so the fastest are the least disturbed (why timeit reports a minimum)."""
    return max(speeds[variant]) / max(speeds[bare])


def _key(setting: str) -> str:
    """trainer.compile=true -> compile; trainer.flat_params=false -> separate"""
    return "separate" if setting == timing.SEPARATE else setting.split("=")[0].split(".")[-1]


def print_tables(
    report: dict[str, object], steps: dict[str, int], reps: int, opt_in: list[str]
) -> None:
    """The report as the docs' tables show it, headed by what was measured and where."""
    machine, results = report["machine"], report["results"]
    lengths = ", ".join(f"{name} {n} steps" for name, n in steps.items())
    trainer_threads = ", ".join(f"{r['config']} {r['threads']['trainer']}" for r in results)
    print(
        f"\n{machine['device']}, torch {machine['torch']}; {lengths} x {reps} interleaved "
        f"repetitions (medians), {report['minutes']:.1f} minutes; threads: the bare loop "
        f"torch's own {machine['threads']}, the Trainer trainer.threads ({trainer_threads})\n"
    )
    _print_costs(results)
    _print_same_threads(results)
    if opt_in:
        _print_opt_in(results, [_key(setting) for setting in opt_in])
    print("\n(steps/s: generator steps per second)")


def _print_costs(results: list[dict[str, object]]) -> None:
    """The Trainer against the bare loop, and what diagnostics at every step cost it."""
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


def _print_same_threads(results: list[dict[str, object]]) -> None:
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


def _print_opt_in(results: list[dict[str, object]], keys: list[str]) -> None:
    """Each opt-in setting's Trainer run against the bare loop; a compiled run that fell back
    to eager passes measured something else, and says so."""
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
