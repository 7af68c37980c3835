"""scripts/bench.py --threads: the Trainer's steps/s at each CPU thread count, beside the count
that trainer.threads=auto picks, which is what these measurements are for."""

from __future__ import annotations

import statistics
import sys

import torch

from ganopt.bench import timing

#: --threads measures these (a small MLP, small convolutions, a large MLP)
THREAD_CONFIGS = ("toy", "dcgan", "wide")


def thread_counts() -> list[int]:
    """1, 2, 4 ... up to torch's own default (one thread per core), which is always included."""
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n < timing.TORCH_THREADS]
    return [*counts, timing.TORCH_THREADS]


def measure(
    names: list[str], base: list[str], steps: dict[str, int], reps: int
) -> list[dict[str, object]]:
    """The Trainer's steps/s for each config at each intra-op thread count, interleaved, beside
    the count that trainer.threads=auto runs it at."""
    rows = []
    for name in names:
        overrides = [*timing.CONFIGS[name], *base]
        parts = timing.components(overrides)
        auto = torch.get_num_threads()
        counts = thread_counts()
        print(f"threads {counts} on {name} ({steps[name]} steps x {reps}) ...", file=sys.stderr)
        variants = {
            n: lambda k, o=(*overrides, f"trainer.threads={n}"): timing.run_trainer(list(o), k)
            for n in counts
        }
        speeds = timing.interleaved(variants, steps[name], reps)
        medians = {n: statistics.median(v) for n, v in speeds.items()}
        rows.append(
            {
                "config": name,
                "parameters": sum(
                    p.numel() for p in (*parts.G.parameters(), *parts.D.parameters())
                ),
                "steps_per_sec": medians,
                "runs": speeds,
                "fastest": max(medians, key=medians.__getitem__),
                "auto": auto,
            }
        )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    """One row per config, one column per thread count."""
    counts = list(rows[0]["steps_per_sec"])
    cells = " | ".join(f"{n} thread{'s' * (n > 1)}" for n in counts)
    print(f"| config | parameters | {cells} | fastest | `auto` runs at |")
    print("|---|---|" + "---|" * len(counts) + "---|---|")
    for r in rows:
        speeds = " | ".join(f"{r['steps_per_sec'][n]:.1f}" for n in counts)
        print(f"| {r['config']} | {r['parameters']:,} | {speeds} | {r['fastest']} | {r['auto']} |")
