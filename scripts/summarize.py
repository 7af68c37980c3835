"""Summarize a sweep: ``python scripts/summarize.py multirun/DATE/TIME``.

Reads every job's overrides and metrics.json, groups jobs that differ only in trainer.seed
(mean ± std), keeps failed, diverged and rejected jobs with their status, prints the table
and writes summary.md, summary.csv and summary.png into the sweep directory. Every multirun
already does this when it ends.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganopt.rundir import WriteError
from ganopt.sweeps import summarize_sweep
from ganopt.tables import add_table_argument, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory")
    add_table_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.sweep_dir.is_dir():
        print(f"error: {args.sweep_dir} is not a directory", file=sys.stderr)
        return 2
    try:
        markdown, table = summarize_sweep(args.sweep_dir)
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
