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
    python scripts/bench.py --startup            # a 6-step run's process against import torch
    python scripts/bench.py --suite              # the test suite, whole and its fast subset

--scaling measures the Trainer, the bare loop (at the Trainer's thread count: what the
framework adds) and the Trainer with per-layer diagnostics at every step, each in a process of
its own (so that its peak memory is its own: RSS on a CPU, the CUDA allocator's peak on a GPU),
along three axes: toy batch 64 to 4096, toy MLP width 128 to
1024 (batch 256), DCGAN width 16 to 128 (batch 64); it writes OUT/bench_scaling.csv and a
log-log plot OUT/bench_scaling.png.

--breakdown times one run as train.py makes it, at its own length (toy: 5000 steps), part by
part: the steps (log steps apart), the TensorBoard writes, the sample and gradient-flow figures,
evaluation, the game's spectrum and checkpoints on their default intervals (the other modes
leave evaluation and the game out), and the rest, the loop's own bookkeeping. Then --reps
(default 3) interleaved pairs of that run untimed and a bare run of the same steps (no figures,
evaluation, game, histograms or periodic checkpoints): the share of the training time beyond
the steps, work beside training that slows the steps it overlaps included.

--startup times whole processes, interleaved (default 5 repetitions): a 6-step train.py run (with
--extra's overrides), ``python -c "import torch"`` and a mistyped ``train.py loss=wgna``, and
reports their medians, minima and maxima, the run's time beyond import torch and the typo's
time over it.

--suite runs the test suite as docs/install.md tells a user to (python -m pytest, whole and
-m "not slow"), each in a process of its own (default 1 repetition: the whole suite takes
minutes).

Steps/s are generator steps per second of training proper (the Trainer's own measurement, which
leaves out start-up, the final figure and the final evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganopt.arguments import output_dir
from ganopt.bench import (
    breakdown,
    compare,
    rules,
    scaling,
    startup,
    subnormals,
    suite,
    threads,
    timing,
)
from ganopt.config import ConfigError
from ganopt.rundir import WriteError
from ganopt.tables import add_table_argument, printed, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, parsed (tests/test_docs.py checks the documented commands with it)."""
    return parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; with --table, also writes what it printed as a generated table."""
    p = parser()
    args = p.parse_args(argv)
    if args.table is None or args.json or args.point:
        return measure(p, args)
    with printed() as tables:
        code = measure(p, args)
    if code == 0:
        device = "cuda" if timing.on_cuda(args.device) else "cpu"
        write_table(args.table, tables.getvalue(), device)
    return code


def parser() -> argparse.ArgumentParser:
    """The flags of the default mode and those every mode reads, then the other modes'."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--steps", type=int, help="generator steps per measured run (default: toy 250, dcgan 50)"
    )
    p.add_argument("--reps", type=int, help=f"interleaved repetitions (default {timing.REPS[0]})")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the toy config only (unless --configs), 100 steps, 2 repetitions: a rough look",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--configs",
        help=f"which of: {', '.join(timing.CONFIGS)} (default: {','.join(timing.DEFAULT_CONFIGS)})",
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
    _add_modes(p)
    add_table_argument(p)
    return p


def _add_modes(p: argparse.ArgumentParser) -> None:
    """The modes that measure something else instead of the default comparison."""
    p.add_argument(
        "--subnormals",
        action="store_true",
        help="instead: each optimizer step at the end of a toy run (--steps, default "
        f"{subnormals.SUBNORMAL_STEPS}), IEEE against trainer.flush_denormal",
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
        "--startup",
        action="store_true",
        help="instead: a 6-step run's wall time against python -c 'import torch' and a "
        f"refused typo, whole processes, interleaved (default {startup.REPS} repetitions)",
    )
    p.add_argument(
        "--suite",
        action="store_true",
        help="instead: the test suite's wall time, whole and its fast subset (-m 'not slow')",
    )
    p.add_argument(
        "--rules",
        action="store_true",
        help="instead: each update rule's steps/s on the toy config against the default's",
    )


def measure(p: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Refuses a bad command line before anything is measured (exit 2: a bad override or
    output directory, in one line), then runs the mode it asks for."""
    names, steps, reps = _plan(p, args)
    if args.point:
        point = json.loads(args.point)
        measured = scaling.measure_point(point["variant"], point["overrides"], point["steps"])
        print(json.dumps(measured))
        return 0
    on_cpu = args.device in ("auto", "cpu")
    if args.threads and not on_cpu:
        p.error("--threads measures the CPU: leave --device out")
    if args.subnormals and (not on_cpu or args.configs):
        p.error("--subnormals measures the toy config on the CPU: leave --device, --configs out")
    try:  # a bad --extra, --device or --out fails here, in one line, before anything is measured
        for name in names:
            timing.components([*timing.CONFIGS[name], f"trainer.device={args.device}", *args.extra])
        if args.scaling:
            output_dir(args.out)
    except (ConfigError, WriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        _run_mode(args, names, steps, reps)
    except timing.CommandFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _plan(
    p: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[str], dict[str, int], int]:
    """The configs to measure, each one's run length, and the repetitions; argparse's error
    (exit 2) for an unknown config or a run too short to time."""
    default = threads.THREAD_CONFIGS if args.threads else timing.DEFAULT_CONFIGS
    configs = args.configs or ("toy" if args.quick or args.startup else ",".join(default))
    names = [n.strip() for n in configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in timing.CONFIGS]
    reps = timing.REPS[args.quick] if args.reps is None else args.reps
    if unknown or (args.steps is not None and args.steps < 10) or reps < 1:
        p.error(f"unknown configs {unknown}" if unknown else "--steps >= 10 and --reps >= 1")
    return names, {name: args.steps or timing.STEPS[name][args.quick] for name in names}, reps


def _run_mode(args: argparse.Namespace, names: list[str], steps: dict[str, int], reps: int) -> None:
    """The first mode flag set, in this order, else the default comparison."""
    base = [f"trainer.device={args.device}", *args.extra]
    if args.scaling:
        command = [sys.executable, __file__, "--point"]
        _show(args, scaling.measure(base, args.steps, args.out, command), scaling.print_table)
        print(f"\nwrote {args.out / 'bench_scaling.csv'} and {args.out / 'bench_scaling.png'}")
    elif args.threads:
        cpu = ["trainer.device=cpu", *args.extra]
        _show(args, threads.measure(names, cpu, steps, reps), threads.print_table)
    elif args.subnormals:
        length = args.steps or subnormals.SUBNORMAL_STEPS
        toy = ["trainer.device=cpu", *timing.CONFIGS["toy"], *args.extra]
        _show(args, subnormals.measure(toy, length, reps), subnormals.print_table)
    elif args.breakdown:
        length = [f"trainer.steps={args.steps}"] if args.steps else []  # else the config's own
        configs = names if args.configs else ["toy"]
        measured = breakdown.measure(configs, [*base, *length], args.reps or timing.REPS[0])
        _show(args, measured, breakdown.print_tables)
    elif args.startup:
        _show(
            args,
            startup.measure(args.extra, reps if args.reps else startup.REPS),
            startup.print_table,
        )
    elif args.suite:
        _show(args, suite.measure(args.reps or 1), suite.print_table)
    elif args.rules:
        length = args.steps or timing.STEPS["toy"][args.quick]
        _show(args, rules.measure(base, length, reps), rules.print_table)
    else:
        cuda = timing.on_cuda(args.device)
        opt_in = compare.opt_in_settings(args.separate, args.fused, args.compiled, cuda)
        report = compare.measure(names, base, steps, reps, opt_in, cuda)
        _show(args, report, lambda r: compare.print_tables(r, steps, reps, opt_in))


def _show(args: argparse.Namespace, measured: object, print_table: Callable[[Any], None]) -> None:
    """A mode's measurements as JSON with --json, else as its tables."""
    if args.json:
        print(json.dumps(measured, indent=2))
    else:
        print_table(measured)


if __name__ == "__main__":
    sys.exit(main())
