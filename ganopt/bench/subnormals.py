"""scripts/bench.py --subnormals: what subnormal optimizer state costs an x86 CPU late in a run,
the case for trainer.flush_denormal, and whether flushing changes the weights."""

from __future__ import annotations

import contextlib
import copy
import statistics
import time

import torch

from ganopt.bench import timing
from ganopt.components import Components
from ganopt.optimizers import FlushedSubnormals

#: the run's length, and timed optimizer steps per variant and repetition
SUBNORMAL_STEPS, SUBNORMAL_TIMINGS = 2000, 20
FLUSH_DENORMAL, IEEE = "trainer.flush_denormal=true", "trainer.flush_denormal=false"


def measure(overrides: list[str], steps: int, reps: int) -> dict[str, object]:
    """Each optimizer's step at the end of a run ``steps`` long, from that run's state and
    gradients, with IEEE arithmetic and with subnormals flushed (trainer.flush_denormal), in
    turns, ``reps`` x SUBNORMAL_TIMINGS times each: timings a millisecond long, side by side,
    which the machine's drift cannot tell apart as it does whole runs. Also the share of the
    optimizer's moments that are subnormal, the IEEE run's own time per generator step, and
    whether the same run trained with trainer.flush_denormal=true ends with the same weights."""
    parts, result = timing.trained([*overrides, "trainer.sample_every=0", IEEE], steps)
    flushed_run, _ = timing.trained([*overrides, "trainer.sample_every=0", FLUSH_DENORMAL], steps)
    same_weights = all(
        torch.equal(a, b) for a, b in zip(_weights(parts), _weights(flushed_run), strict=True)
    )
    networks = {
        network: _optimizer_step(optimizer, reps)
        for network, optimizer in (("G", parts.opt_G), ("D", parts.opt_D))
    }
    return {
        "steps": steps,
        "ms_per_generator_step": 1e3 / result.metrics["steps_per_sec"],
        "d_steps": parts.settings.d_steps,
        "networks": networks,
        "same_weights_when_flushed": same_weights,
    }


def _optimizer_step(optimizer: torch.optim.Optimizer, reps: int) -> dict[str, object]:
    """One optimizer's step in milliseconds (medians), IEEE and flushed, each from the run's
    weights and state, and the share of its moments that are subnormal."""
    arithmetic = {"ieee": contextlib.nullcontext(), "flushed": FlushedSubnormals()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    weights, state = [p.detach().clone() for p in params], copy.deepcopy(optimizer.state_dict())
    times: dict[str, list[float]] = {mode: [] for mode in arithmetic}
    for rep in range(reps * SUBNORMAL_TIMINGS):
        for mode in list(arithmetic) if rep % 2 == 0 else list(arithmetic)[::-1]:
            with torch.no_grad():
                torch._foreach_copy_(params, weights)
            optimizer.load_state_dict(copy.deepcopy(state))  # a step changes it in place
            start = time.perf_counter()
            with arithmetic[mode]:
                optimizer.step()
            times[mode].append(time.perf_counter() - start)
    moments = [t for s in state["state"].values() for t in s.values() if t.dim() > 0]
    subnormal = sum(int(((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum()) for t in moments)
    return {
        "subnormal_share": subnormal / max(1, sum(t.numel() for t in moments)),
        "ms": {mode: 1e3 * statistics.median(v) for mode, v in times.items()},
    }


def _weights(parts: Components) -> list[torch.Tensor]:
    """Both networks' weights, to compare two runs bit for bit."""
    return [p.detach() for p in [*parts.G.parameters(), *parts.D.parameters()]]


def print_table(measured: dict[str, object]) -> None:
    """Each optimizer's step, IEEE and flushed, and what flushing saves a generator step."""
    print(
        "| optimizer | subnormal share of its state | step, IEEE (ms) | step, flushed (ms) | "
        "flushed / IEEE |\n|---|---|---|---|---|"
    )
    saved = 0.0
    for network, r in measured["networks"].items():
        ieee, flushed = r["ms"]["ieee"], r["ms"]["flushed"]
        saved += (ieee - flushed) * (measured["d_steps"] if network == "D" else 1)
        print(
            f"| {network} | {100 * r['subnormal_share']:.1f}% | {ieee:.3f} | {flushed:.3f} | "
            f"{flushed / ieee:.2f} |"
        )
    step = measured["ms_per_generator_step"]
    print(
        f"\nafter {measured['steps']} steps with trainer.flush_denormal=false; a generator step "
        f"of that run took {step:.2f} ms "
        f"on average: flushing saves {saved:.2f} ms of it ({100 * saved / step:.1f}%)"
    )
    same = measured["same_weights_when_flushed"]
    print(
        "the same run with trainer.flush_denormal=true ends with "
        + ("the same weights, bit for bit" if same else "different weights")
    )
