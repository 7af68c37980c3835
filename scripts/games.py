"""Update rules on games whose equilibrium is known, per gradient evaluation (docs/game.md).

    python scripts/games.py --out outputs/games                      # every game
    python scripts/games.py --game bilinear,quadratic --out DIR --evaluations 400 --lr 0.3

Each rule runs on each game with ganopt's own optimizers (the ones GAN training uses) for the
same number of gradient evaluations (an extragradient step costs two), from the same start.
Games: ``bilinear`` (min_x max_y xᵀAy + bᵀx + cᵀy in 5 dimensions, A's singular values 1 to
0.2), ``quadratic`` (strongly monotone, its Jacobian's eigenvalues at angle θ·90° from the real
axis: θ = 0 a pure potential, 0.5, 0.9 near a pure rotation), ``dirac`` (the Dirac-GAN with the
minimax loss). For the linear games theory predicts every curve (ganopt/games/theory.py), for
simultaneous GD and extragradient in closed form; for the Dirac-GAN, only its linearization's
rate near the equilibrium.

Writes DIR/<game>.csv (game, setting, rule, evaluations, distance, predicted, closed_form) and
DIR/<game>.png (distance to the equilibrium against gradient evaluations, measured solid, theory
dashed), and prints (and with --table writes) each rule's distance at the end and how far the
measured curve is from theory.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from matplotlib.figure import Figure

from ganopt.arguments import output_dir, save_figure, written
from ganopt.games import (
    CLOSED_FORM,
    RULES,
    Bilinear,
    Dirac,
    Game,
    LinearGame,
    Quadratic,
    closed_form,
    play,
    predict,
)
from ganopt.rundir import WriteError
from ganopt.tables import add_table_argument, write_table

ROTATIONS = (0.0, 0.5, 0.9)
GAMES = ("bilinear", "quadratic", "dirac")


def settings(game: str) -> list[tuple[str, Game]]:
    """(setting, game) pairs: one per game, three rotations of the quadratic."""
    if game == "bilinear":
        return [("σ = 1 … 0.2", Bilinear([1.0, 0.8, 0.6, 0.4, 0.2]))]
    if game == "quadratic":
        return [(f"θ = {r:g}", Quadratic(5, r)) for r in ROTATIONS]
    return [("minimax loss", Dirac())]


def measure(game: Game, rule: str, lr: float, evaluations: int) -> list[dict[str, object]]:
    """A row per step: evaluations, the measured distance, and theory's where it has one."""
    steps = evaluations // RULES[rule].evaluations_per_step
    curve = play(game, RULES[rule], lr, steps)
    exact = predict(game, rule, lr, steps) if isinstance(game, LinearGame) else None
    closed = closed_form(game, rule, lr, steps) if rule in CLOSED_FORM else None
    return [
        {
            "evaluations": evals,
            "distance": distance,
            "predicted": None if exact is None else exact[t],
            "closed_form": None if closed is None else closed[t],
        }
        for t, (evals, distance) in enumerate(curve)
    ]


#: below this share of the starting distance, float64 rounding of the equilibrium itself
#: (about 1e-16 of its size) is all there is to measure: neither curve is compared there
RESOLUTION = 1e-8


def deviation(rows: list[dict[str, object]], key: str) -> float | None:
    """The largest relative gap between the measured curve and theory's ``key`` curve, where
    both lie above float64's resolution."""
    floor = RESOLUTION * rows[0]["distance"]
    pairs = [
        (r["distance"], r[key])
        for r in rows
        if r[key] is not None and min(r["distance"], r[key]) > floor
    ]
    if not pairs:
        return None
    return max(abs(m - p) / max(abs(p), 1e-300) for m, p in pairs)


def figure(name: str, results: dict[str, dict[str, list[dict]]]) -> Figure:
    fig = Figure(figsize=(5.2 * len(results), 4.2), layout="constrained")
    for i, (setting, curves) in enumerate(results.items(), start=1):
        ax = fig.add_subplot(1, len(results), i)
        for rule, rows in curves.items():
            x = [r["evaluations"] for r in rows]
            (line,) = ax.plot(x, [r["distance"] for r in rows], label=RULES[rule].label)
            theory = "predicted" if rows[0]["predicted"] is not None else "closed_form"
            if rows[0][theory] is not None:
                ax.plot(x, [r[theory] for r in rows], "--", color=line.get_color(), lw=1)
        ax.set_yscale("log")
        start = next(iter(curves.values()))[0]["distance"]
        lowest = min(r["distance"] for rows in curves.values() for r in rows)
        ax.set_ylim(bottom=max(RESOLUTION * start, lowest / 2))
        ax.set_xlabel("gradient evaluations (per player)")
        ax.set_ylabel("distance to the equilibrium")
        ax.set_title(f"{name}: {setting}", fontsize=10)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.suptitle("measured (solid) and theory (dashed)", fontsize=9)
    return fig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--game", default=",".join(GAMES), help="comma-separated: " + ", ".join(GAMES)
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSVs and figures")
    parser.add_argument(
        "--evaluations", type=int, default=400, help="gradient evaluations per rule"
    )
    parser.add_argument("--lr", type=float, default=0.3, help="every rule's step size h")
    add_table_argument(parser)
    args = parser.parse_args(argv)
    args.games = [g.strip() for g in args.game.split(",") if g.strip()]
    if unknown := [g for g in args.games if g not in GAMES]:
        parser.error(f"unknown game {unknown[0]!r}; choose from {', '.join(GAMES)}")
    if args.evaluations < 2 or not args.lr > 0:
        parser.error("--evaluations must be >= 2 and --lr > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        out = output_dir(args.out)
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    lines = [
        "| game | setting | rule | distance at the end | factor per evaluation | theory's "
        "| largest gap to theory |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.games:
        results: dict[str, dict[str, list[dict]]] = {}
        with written(out / f"{name}.csv") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["game", "setting", "rule", "evaluations", "distance", "predicted", "closed_form"]
            )
            for setting, game in settings(name):
                results[setting] = {}
                for rule in RULES:
                    rows = measure(game, rule, args.lr, args.evaluations)
                    results[setting][rule] = rows
                    for r in rows:
                        writer.writerow(
                            [
                                name,
                                setting,
                                rule,
                                *(
                                    _cell(r[k])
                                    for k in ("evaluations", "distance", "predicted", "closed_form")
                                ),
                            ]
                        )
                    lines.append(_row(name, setting, rule, rows))
        save_figure(figure(name, results), out / f"{name}.png", dpi=110)
    text = "\n".join(lines) + (
        f"\n\nEvery rule at step size h = {args.lr:g} for {args.evaluations} gradient "
        "evaluations per player. Theory: the exact recurrence on the linear games; on the "
        "Dirac-GAN, the linearization's closed form (valid only near the equilibrium)."
    )
    print(text)
    print(f"wrote {out}/<game>.csv and <game>.png")
    write_table(args.table, text)
    return 0


def _row(name: str, setting: str, rule: str, rows: list[dict]) -> str:
    end = rows[-1]
    key = "predicted" if end["predicted"] is not None else "closed_form"
    floor = RESOLUTION * rows[0]["distance"]
    gap = deviation(rows, key)
    measured, theory = _factor(rows, "distance", floor), _factor(rows, key, floor)
    return (
        f"| {name} | {setting} | {RULES[rule].label} | {_distance(end['distance'], floor)} | "
        f"{measured} | {theory} | {'–' if gap is None else f'{gap:.1e}'} |"
    )


def _factor(rows: list[dict], key: str, floor: float) -> str:
    """The mean factor by which the distance changes per gradient evaluation, over the curve
    down to float64's resolution: below 1 it converges, above 1 it diverges."""
    above = [r for r in rows if r[key] is not None and r[key] > floor]
    if len(above) < 2 or rows[0][key] is None:
        return "–"
    last = above[-1]
    return f"{(last[key] / rows[0][key]) ** (1 / last['evaluations']):.4f}"


def _distance(value: float | None, floor: float) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if value > floor else f"< {RESOLUTION:g} × start"


def _cell(value: object) -> str:
    return "" if value is None else repr(value)


if __name__ == "__main__":
    sys.exit(main())
