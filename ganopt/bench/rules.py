"""scripts/bench.py --rules: what each update rule of docs/game.md costs per step against the
default, the price beside the stability it buys."""

from __future__ import annotations

import statistics

from ganopt.bench import timing

#: the update rules, each against the default (alternating Adam) on the toy config:
#: (label, overrides, gradient evaluations per step)
RULES = {
    "alternating": ("alternating Adam (the default)", [], 1),
    "simultaneous": ("simultaneous Adam", ["trainer.update=simultaneous"], 1),
    "extra_adam": ("Extra-Adam (simultaneous, as in the paper)", ["optim=extra_adam"], 2),
    "optimistic_adam": ("Optimistic Adam", ["optim=optimistic_adam"], 1),
    "lookahead_adam": ("Lookahead-minmax over Adam", ["optim=lookahead_adam"], 1),
    "negative_momentum": ("negative momentum (D's beta1 = -0.5)", ["optim=negative_momentum"], 1),
    "consensus": ("consensus beside R1 (double backward)", ["+reg@reg2=consensus"], 1),
}


def measure(overrides: list[str], steps: int, reps: int) -> dict[str, object]:
    """Trainer steps/s of each update rule, interleaved, and its cost per step against the
    default's (the ratio of the medians of the per-repetition ratios)."""
    variants = {
        name: lambda n, rule=rule: timing.run_trainer([*overrides, *rule], n)
        for name, (_, rule, _) in RULES.items()
    }
    speeds = timing.interleaved(variants, steps, reps)
    base = speeds["alternating"]
    return {
        name: {
            "steps_per_sec": statistics.median(v),
            "time_per_step_vs_default": statistics.median(
                b / x for x, b in zip(v, base, strict=True)
            ),
            "gradient_evaluations": RULES[name][2],
        }
        for name, v in speeds.items()
    }


def print_table(rules: dict[str, dict[str, float]]) -> None:
    """One row per rule, labelled as docs/game.md names it."""
    print(
        "| update rule | steps/s | time per step vs the default | gradient evaluations per "
        "step |\n|---|---|---|---|"
    )
    for name, r in rules.items():
        print(
            f"| {RULES[name][0]} | {r['steps_per_sec']:.1f} | "
            f"{r['time_per_step_vs_default']:.2f}x | {r['gradient_evaluations']} |"
        )
