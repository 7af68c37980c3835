"""Summarize a sweep: ``python scripts/summarize.py multirun/DATE/TIME``.

Reads every job's overrides, metrics.json and evaluations.csv, groups jobs that differ only in
trainer.seed (means with 95 % bootstrap intervals, success rate, steps to success, best over
training), keeps failed, diverged and rejected jobs with their status, prints the table and
writes summary.md, summary.csv and summary.png into the sweep directory. Every multirun already
does this when it ends; --success judges a finished sweep by another criterion
(docs/sweeps.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganopt.evidence import criterion_problems
from ganopt.rundir import WriteError
from ganopt.sweeps import summarize_sweep
from ganopt.tables import add_table_argument, write_table


def criterion(text: str) -> dict[str, float | str]:
    """``modes=n_modes,hq_ratio=0.9`` → {"modes": "n_modes", "hq_ratio": 0.9}."""
    pairs = {}
    for part in text.split(","):
        metric, sep, threshold = part.partition("=")
        if not sep or not metric or not threshold:
            raise argparse.ArgumentTypeError(f"metric=threshold pairs, got {part!r}")
        try:
            pairs[metric.strip()] = float(threshold)
        except ValueError:
            pairs[metric.strip()] = threshold.strip()
    if problems := criterion_problems(pairs):
        raise argparse.ArgumentTypeError(
            "; ".join(p.removeprefix("objective.success").lstrip(".: ") for p in problems)
        )
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory")
    parser.add_argument(
        "--success",
        type=criterion,
        help="a success criterion, metric=threshold pairs: modes=n_modes,hq_ratio=0.9",
    )
    parser.add_argument(
        "--metrics",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        help="only these metrics, in this order: fd_digits,coverage (all by default)",
    )
    add_table_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        markdown, table = summarize_sweep(args.sweep_dir, criterion=args.success, only=args.metrics)
    except (FileNotFoundError, WriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table)
    written = [args.sweep_dir / name for name in ("summary.md", "summary.csv", "summary.png")]
    print("wrote " + ", ".join(map(str, written)))
    write_table(args.table, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
