"""Print scalar tags of a run from the TensorBoard events in its directory.

    python scripts/scalars.py RUN_DIR wasserstein/estimate                 # every logged step
    python scripts/scalars.py RUN_DIR metrics/fd_digits loss/G --steps 1000,2000,3000
    python scripts/scalars.py RUN_DIR --list                              # the run's tags

Prints a markdown table, a row per step and a column per tag (an empty cell where a tag was not
logged at that step); with --csv, CSV; with --table FILE, the table headed by its provenance,
as the docs' tables from training curves are written (scripts/reproduce.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ganopt.arguments import integers
from ganopt.tables import add_table_argument, write_table


def read(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def series(accumulator: EventAccumulator, tags: list[str]) -> dict[int, dict[str, float]]:
    """step → tag → value (the last one written for a step wins, as in TensorBoard)."""
    rows: dict[int, dict[str, float]] = {}
    for tag in tags:
        for event in accumulator.Scalars(tag):
            rows.setdefault(event.step, {})[tag] = event.value
    return dict(sorted(rows.items()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run directory (its events.out.tfevents.*)")
    p.add_argument("tags", nargs="*", help="scalar tags, e.g. loss/G grad_norm/G/total")
    p.add_argument("--steps", type=integers, help="only these steps, comma-separated")
    p.add_argument("--list", action="store_true", help="list the run's scalar tags")
    p.add_argument("--csv", action="store_true", help="CSV instead of markdown")
    add_table_argument(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not list(args.run_dir.glob("events.out.tfevents.*")):
        print(f"error: no TensorBoard event files in {args.run_dir}", file=sys.stderr)
        return 2
    accumulator = read(args.run_dir)
    available = accumulator.Tags()["scalars"]
    if args.list or not args.tags:
        print("\n".join(sorted(available)))
        return 0
    if missing := [t for t in args.tags if t not in available]:
        print(f"error: {args.run_dir} has no scalar {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = series(accumulator, args.tags)
    if args.steps:
        wanted = set(args.steps)
        rows = {step: values for step, values in rows.items() if step in wanted}
    header = ["step", *args.tags]
    cells = [
        [str(step), *(f"{v[t]:.4g}" if t in v else "" for t in args.tags)]
        for step, v in rows.items()
    ]
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(cells)
    else:
        lines = ["| " + " | ".join(header) + " |\n|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        print("\n".join(lines))
        write_table(args.table, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
