"""Every evaluation of a run, in order: ``evaluations.csv`` in the run directory (a row per
evaluation, a column per metric, empty where a metric was undefined). A sweep summary reads it
for the best value over training and the step at which a success criterion was first met.
Checkpoints keep it, so that a resumed run's file is the same as a straight run's."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ganopt.rundir import write_atomic

FILE = "evaluations.csv"


class EvaluationHistory:
    def __init__(self) -> None:
        self.rows: list[dict[str, float | int | None]] = []

    def add(self, step: int, metrics: dict[str, float | None]) -> None:
        """One evaluation; an evaluation of the same step again (a resume's final one after
        a checkpoint at the last step) replaces it."""
        self.rows = [row for row in self.rows if row["step"] != step]
        self.rows.append({"step": step} | {k: _defined(v) for k, v in metrics.items()})

    def write(self, run_dir: Path) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        with io.StringIO(newline="") as text:
            writer = csv.writer(text)
            writer.writerow(columns)
            for row in self.rows:
                writer.writerow([_cell(row.get(c)) for c in columns])
            data = text.getvalue().encode()
        write_atomic(Path(run_dir) / FILE, lambda f: f.write(data))

    def state_dict(self) -> dict[str, object]:
        return {"rows": [dict(row) for row in self.rows]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        rows = state["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("evaluations must be a list of rows")
        self.rows = [
            {str(k): int(v) if k == "step" else _defined(v) for k, v in row.items()} for row in rows
        ]


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """A run's evaluations, each row without its undefined metrics; [] without the file. A
    file that does not parse as ganopt writes it, or a symlink (which would read a file from
    outside the run directory), raises ValueError."""
    path = Path(run_dir) / FILE
    if path.is_symlink():
        raise ValueError(f"{path} is a symlink; ganopt writes a file there")
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        try:
            row = {k: float(v) for k, v in raw.items() if k is not None and v not in ("", None)}
        except (TypeError, ValueError):
            raise ValueError(f"{path}: not a table of numbers") from None
        if "step" not in row:
            raise ValueError(f"{path}: a row without its step")
        rows.append({k: v for k, v in row.items() if math.isfinite(v)})
    return rows


def _defined(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)
