"""The CPU cores a measurement may use while training waits for it: the evaluation's distance
matrices run side by side on the cores the run's own torch threads leave free (a toy run uses
one thread on a machine of two or more). Only tasks whose arithmetic is their own belong here,
so that results have the same bits however many run at once: not autograd's backward passes,
whose order of summation depends on the thread that built the graph's newest nodes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system has one)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cpus or 1


def spare_threads(device: torch.device, most: int) -> int:
    """How many tasks may run at once, up to ``most``: on a CPU, one per group of torch's
    intra-op threads the cores hold; one where a launcher set OMP_NUM_THREADS (torchrun,
    the joblib launcher: it gave this process its share of the cores, and the other jobs
    have the rest); one on a GPU, whose queue runs them in turn anyway."""
    if device.type != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return 1
    return max(1, min(most, usable_cpus() // torch.get_num_threads()))


def side_by_side(function: Callable[[T], R], items: Iterable[T], device: torch.device) -> list[R]:
    """``[function(item) for item in items]``, on spare threads where there are (torch
    releases the interpreter inside its kernels); on the calling thread, and so on its CUDA
    device and stream, where there are none."""
    items = list(items)
    workers = spare_threads(device, len(items))
    if workers == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(function, items))
