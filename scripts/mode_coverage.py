"""The mode-coverage tables of docs/strategies.md: each method on ring8 and grid25, several seeds,
mean ± std of PacGAN's metrics (modes, hq_ratio, kl; docs/evaluation.md).

    python scripts/mode_coverage.py          # every strategy: 9 methods x 2 data sets x 5 seeds
    python scripts/mode_coverage.py --methods default,plain_gan --data ring8 --seeds 0,1
    python scripts/mode_coverage.py --data ring8 \\
        --methods default,plain_gan,no_r1,no_ema,no_decay,gamma10     # the recipe's ablations
    python scripts/mode_coverage.py --jobs 1 --out outputs/mode_coverage
    python scripts/mode_coverage.py --game --jobs 16   # docs/game.md

Every run is `python train.py <the method's overrides> data=<data> trainer.seed=<seed>` (at its
default 5000 generator steps unless --steps) in OUT/<method>/<data>/seed_<seed>; a run that
already finished there is read back instead of trained again (--rerun trains it anew), so the
table can be rebuilt from its runs in seconds. Prints the markdown table, writes a per-run
OUT/mode_coverage.csv, and with --table FILE the table headed by its provenance (how
scripts/reproduce.py writes the docs' tables).

--game compares the update rules of docs/game.md, all inside the default
recipe (R1, EMA, Adam lr 1e-3 betas (0.5, 0.9) with its decay), evaluated every 250 steps; its
second table adds the first evaluated step with every mode and the game (measured once, at
the last step: the largest |Im λ|, the rotation, the smallest eigenvalue of G's Hessian).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ganopt.arguments import integers, output_dir, save_figure, written
from ganopt.rundir import WriteError, run_above
from ganopt.tables import add_table_argument, write_table

REPO = Path(__file__).resolve().parents[1]

#: name: (row label, overrides)
METHODS: dict[str, tuple[str, list[str]]] = {
    "default": ("default recipe: non-saturating + R1 + EMA, `adam_decay`", []),
    "plain_gan": (
        "plain GAN: non-saturating, DCGAN's Adam (`experiment=plain_gan`)",
        ["experiment=plain_gan"],
    ),
    "wgan_sgd": (
        "WGAN, SGD + clipping (`loss=wgan optim=sgd_clip`)",
        ["loss=wgan", "optim=sgd_clip"],
    ),
    "wgan_paper": ("WGAN, RMSProp + clipping (`experiment=wgan_paper`)", ["experiment=wgan_paper"]),
    "wgan_gp": ("WGAN-GP (`experiment=wgan_gp_paper`)", ["experiment=wgan_gp_paper"]),
    "sngan": ("hinge + spectral norm (`experiment=sngan`)", ["experiment=sngan"]),
    **{  # the default recipe with a relativistic loss in place of the non-saturating one
        name: (f"{label} in the default recipe (`loss={name}`)", [f"loss={name}"])
        for name, label in (("rsgan", "RSGAN"), ("rasgan", "RaSGAN"), ("ralsgan", "RaLSGAN"))
    },
}
DATA = ("ring8", "grid25")
METRICS = ("modes", "hq_ratio", "kl")
#: the default recipe without one of its parts (docs/strategies.md, "The default recipe")
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "no_r1": ("default recipe without R1 (`reg=none`)", ["reg=none"]),
    "no_ema": (
        "default recipe without the EMA (`trainer.ema_decay=null`)",
        ["trainer.ema_decay=null"],
    ),
    "no_decay": ("default recipe without the lr decay (`optim.lr_decay=0`)", ["optim.lr_decay=0"]),
    "gamma10": ("default recipe with R1's image setting γ = 10 (`reg.gamma=10`)", ["reg.gamma=10"]),
}
METHODS |= ABLATIONS
#: the update rules of docs/game.md, in the default recipe, evaluated often;
#: the game's spectrum only at the end (its interval is longer than any run here)
EVERY_250 = ["trainer.eval_every=250", "diagnostics.game_every=1000000"]
GAME: dict[str, tuple[str, list[str]]] = {
    "alternating": ("alternating Adam (the default)", EVERY_250),
    "simultaneous": (
        "simultaneous Adam (`trainer.update=simultaneous`)",
        ["trainer.update=simultaneous", *EVERY_250],
    ),
    "extra_adam": (
        "Extra-Adam as in the paper, simultaneous order (`optim=extra_adam`)",
        ["optim=extra_adam", *EVERY_250],
    ),
    "extra_adam_half": (
        "Extra-Adam, equal gradients: 2500 steps (`optim=extra_adam trainer.steps=2500`)",
        ["optim=extra_adam", "trainer.steps=2500", *EVERY_250],
    ),
    "extra_adam_alternating": (
        "Extra-Adam's look-ahead, alternating order (`optim=extra_adam_alternating`)",
        ["optim=extra_adam_alternating", *EVERY_250],
    ),
    "lookahead_adam": (
        "Lookahead-minmax, k = 5, α = 0.5 (`optim=lookahead_adam`)",
        ["optim=lookahead_adam", *EVERY_250],
    ),
    "negative_momentum": (
        "negative momentum, D's β1 = −0.5 (`optim=negative_momentum`)",
        ["optim=negative_momentum", *EVERY_250],
    ),
    "optimistic_adam": (
        "Optimistic Adam (`optim=optimistic_adam`)",
        ["optim=optimistic_adam", *EVERY_250],
    ),
    "consensus": (
        "consensus γ = 1 beside R1 (`+reg@reg2=consensus`)",
        ["+reg@reg2=consensus", *EVERY_250],
    ),
    # about what 5000 steps cost as consensus steps cost more (docs/game.md, bench.py --rules)
    "consensus_wallclock": (
        "consensus, equal wall-clock: 1500 steps (`+reg@reg2=consensus trainer.steps=1500`)",
        ["+reg@reg2=consensus", "trainer.steps=1500", *EVERY_250],
    ),
}
#: the same rules without R1 (`--methods alternating_no_r1,...`), where their rotation is not
#: already damped by the penalty
WITHOUT_R1 = {
    f"{name}_no_r1": (f"{label}, no R1 (`{' '.join(overrides)}`)", [*overrides, *EVERY_250])
    for name, label, overrides in [
        ("alternating", "alternating Adam", ["reg=none"]),
        ("simultaneous", "simultaneous Adam", ["reg=none", "trainer.update=simultaneous"]),
        ("extra_adam", "Extra-Adam", ["reg=none", "optim=extra_adam"]),
        (
            "extra_adam_half",
            "Extra-Adam, 2500 steps",
            ["reg=none", "optim=extra_adam", "trainer.steps=2500"],
        ),
        ("optimistic_adam", "Optimistic Adam", ["reg=none", "optim=optimistic_adam"]),
        ("lookahead_adam", "Lookahead-minmax", ["reg=none", "optim=lookahead_adam"]),
        ("negative_momentum", "negative momentum", ["reg=none", "optim=negative_momentum"]),
        ("consensus", "consensus γ = 1 alone", ["reg=consensus"]),
    ]
}
METHODS |= GAME | WITHOUT_R1
MAIN = [m for m in METHODS if m not in ABLATIONS and m not in GAME and m not in WITHOUT_R1]
#: the game at a run's last step: (column, tag, digits)
GAME_COLUMNS = (
    ("max abs Im λ", "game/eig_imag_max", 2),
    ("rotation", "game/rotation", 1),
    ("min eig of G's Hessian", "game/hessian_G_min", 3),
)

#: PacGAN (Lin et al. 2018), Table 1: their plain GAN (mean of 10 trials; their networks,
#: 400 epochs of 100 000 samples) and their packed discriminators (PacGAN2-4), which reach
#: about all modes
REFERENCE = [
    ("PacGAN Table 1: plain GAN", ("6.3", "0.982", "0.45"), ("17.3", "0.948", "0.70")),
    ("PacGAN Table 1: packed D (PacGAN2-4)", ("≈ 8", "", ""), ("≈ 24-25", "", "")),
]


def run_dir(out: Path, method: str, data: str, seed: int) -> Path:
    return out / method / data / f"seed_{seed}"


def _finished(metrics_file: Path, steps: int | None) -> dict | None:
    """The metrics of a run that finished at the asked length, or None."""
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    finished = isinstance(metrics, dict) and metrics.get("status") in ("ok", "diverged")
    return metrics if finished and (steps is None or metrics.get("step") == steps) else None


def train(out: Path, method: str, data: str, seed: int, steps: int | None, rerun: bool) -> dict:
    """One run (or the metrics.json it left before)."""
    directory = run_dir(out, method, data, seed)
    for folder in (out / method, out / method / data, directory):
        if folder.is_symlink():  # its runs are this script's own, in its own folder
            raise RuntimeError(f"{folder} is a symlink; refused")
    metrics_file = directory / "metrics.json"
    if not rerun and (metrics := _finished(metrics_file, steps)) is not None:
        return metrics
    shutil.rmtree(directory, ignore_errors=True)  # its unfinished or outdated run: train anew
    command = [
        sys.executable,
        str(REPO / "train.py"),
        *METHODS[method][1],
        f"data={data}",
        f"trainer.seed={seed}",
        *([f"trainer.steps={steps}"] if steps else []),
        "trainer.progress=false",
        f"hydra.run.dir={directory}",
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=_one_thread_env())
    if proc.returncode != 0 or not metrics_file.exists():
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{' '.join(command[2:])} failed: {tail[0]}")
    print(
        f"  {method:11s} {data:6s} seed {seed}: {time.perf_counter() - started:5.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return json.loads(metrics_file.read_text())


def _one_thread_env() -> dict[str, str]:
    """Parallel jobs on a small machine: one intra-op thread each, or they fight for cores."""
    return os.environ | {"OMP_NUM_THREADS": "1"}


def cell(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(results: dict, methods: list[str], data: list[str], seeds: list[int]) -> str:
    """Markdown: a row per method, (modes, hq_ratio, kl) per data set, mean ± std over seeds.
    A run whose kl is undefined (no high-quality sample) is left out of the kl mean, and the
    cell says how many runs it averages."""
    header = ["method"]
    for d in data:
        header += [f"{d} modes", f"{d} hq_ratio", f"{d} kl"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        row = [METHODS[method][0]]
        for d in data:
            runs = [results[(method, d, s)] for s in seeds]
            row.append(cell([float(r["modes"]) for r in runs], 1))
            row.append(cell([float(r["hq_ratio"]) for r in runs], 2))
            kls = [float(r["kl"]) for r in runs if r.get("kl") is not None]
            note = "" if len(kls) == len(runs) else f" ({len(kls)} of {len(runs)} runs)"
            row.append(cell(kls, 3) + note)
        lines.append("| " + " | ".join(row) + " |")
    for label, *per_data in REFERENCE:
        row = [label]
        for d in data:
            row += list(dict(zip(("ring8", "grid25"), per_data, strict=True))[d])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def evaluation_at(directory: Path, step: int) -> dict[str, float | None]:
    """A run's evaluation metrics at ``step`` (an evaluation step), from its events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    found: dict[str, float | None] = {}
    for metric in METRICS:
        series = events.Scalars(f"metrics/{metric}") if f"metrics/{metric}" in tags else []
        found[metric] = next((e.value for e in series if e.step == step), None)
    if found["modes"] is None:
        raise RuntimeError(f"{directory}: no evaluation at step {step}")
    return found


def game_details(directory: Path, data: str) -> dict[str, float | None]:
    """From a run's events: the first evaluated step with every mode, and the game's tags at
    the last step it was measured."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    every_mode = {"ring8": 8, "grid25": 25}[data]
    modes = events.Scalars("metrics/modes") if "metrics/modes" in tags else []
    first = next((e.step for e in modes if e.value >= every_mode), None)
    details: dict[str, float | None] = {"steps_to_all_modes": first}
    for _, tag, _ in GAME_COLUMNS:
        details[tag] = events.Scalars(tag)[-1].value if tag in tags else None
    return details


def game_table(out: Path, methods: list[str], data: list[str], seeds: list[int]) -> str:
    """Markdown: per data set, the step all modes were first seen (runs that never saw them
    are counted apart), and the game at the end. Cost per step: scripts/bench.py."""
    header = ["method"]
    for d in data:
        header += [f"{d} steps to all modes", *(f"{d} {c}" for c, _, _ in GAME_COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        row = [METHODS[method][0]]
        for d in data:
            details = [game_details(run_dir(out, method, d, s), d) for s in seeds]
            reached = [x["steps_to_all_modes"] for x in details if x["steps_to_all_modes"]]
            note = "" if len(reached) == len(seeds) else f" ({len(reached)} of {len(seeds)} runs)"
            row.append(cell([float(r) for r in reached], 0) + note)
            for _, tag, digits in GAME_COLUMNS:
                row.append(cell([x[tag] for x in details if x[tag] is not None], digits))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def side_by_side(args: argparse.Namespace, path: Path) -> None:
    """The first data set's and seed's samples.png of each method in one figure."""
    from matplotlib.figure import Figure
    from PIL import Image

    fig = Figure(figsize=(4.2 * len(args.methods), 4.2), layout="constrained")
    for i, method in enumerate(args.methods, start=1):
        ax = fig.add_subplot(1, len(args.methods), i)
        ax.imshow(
            Image.open(run_dir(args.out, method, args.data[0], args.seeds[0]) / "samples.png")
        )
        ax.set_title(METHODS[method][0].replace("`", ""), fontsize=8, wrap=True)
        ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, 110)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/mode_coverage"))
    p.add_argument("--methods", default=None, help=", ".join(METHODS))
    p.add_argument(
        "--game", action="store_true", help="the update rules (methods: " + ", ".join(GAME) + ")"
    )
    p.add_argument("--data", default="ring8,grid25")
    p.add_argument("--seeds", type=integers, default="0,1,2,3,4", help="comma-separated")
    p.add_argument("--steps", type=int, default=None, help="generator steps (5000)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    p.add_argument("--rerun", action="store_true", help="train runs that already finished again")
    p.add_argument(
        "--at",
        type=int,
        default=None,
        help="the first table at this evaluated step of the same runs, not at their end",
    )
    p.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="also draw the first seed's samples.png of each method, side by side, into FILE",
    )
    add_table_argument(p)
    args = p.parse_args(argv)
    args.methods = (args.methods or ",".join(GAME if args.game else MAIN)).split(",")
    args.data = args.data.split(",")
    if unknown := [m for m in args.methods if m not in METHODS]:
        p.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if unknown := [d for d in args.data if d not in DATA]:
        p.error(f"unknown data {unknown}; choose from {', '.join(DATA)}")
    if args.jobs < 1 or (args.steps is not None and args.steps < 1):
        p.error("--jobs and --steps must be >= 1")
    if args.figure is not None and (run := run_above(args.figure)) is not None:
        p.error(f"--figure {args.figure}: inside the run directory {run}; refused")
    return args


def write_csv(path: Path, results: dict[tuple[str, str, int], dict]) -> None:
    """A row per run: what the tables average."""
    with written(path) as f:
        writer = csv.writer(f)
        writer.writerow(["method", "data", "seed", "status", "step", *METRICS, "steps_per_sec"])
        for (m, d, s), r in results.items():
            metrics = [r.get(k) for k in METRICS]
            writer.writerow([m, d, s, r["status"], r["step"], *metrics, r.get("steps_per_sec")])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        output_dir(args.out)
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # method by method, in the order given: list the costly ones first to keep every job busy
    runs = [(m, d, s) for m in args.methods for d in args.data for s in args.seeds]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {run: pool.submit(train, args.out, *run, args.steps, args.rerun) for run in runs}
        try:
            results = {run: future.result() for run, future in futures.items()}
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if args.at is not None:
        try:
            results = {run: evaluation_at(run_dir(args.out, *run), args.at) for run in runs}
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(table(results, args.methods, args.data, args.seeds))  # nothing written
        return 0
    markdown = table(results, args.methods, args.data, args.seeds)
    if any(m in GAME or m in WITHOUT_R1 for m in args.methods):
        markdown += "\n" + game_table(args.out, args.methods, args.data, args.seeds)
    args.out.mkdir(parents=True, exist_ok=True)
    with written(args.out / "mode_coverage.md") as f:
        f.write(markdown)
    write_csv(args.out / "mode_coverage.csv", results)
    if args.figure is not None:
        side_by_side(args, args.figure)
    write_table(args.table, markdown)
    print(markdown)
    print(
        f"{len(runs)} runs in {time.perf_counter() - started:.0f} s; "
        f"wrote {args.out / 'mode_coverage.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
