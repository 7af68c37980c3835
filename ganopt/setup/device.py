"""Where a run computes: the device, CPU threads, each rank's share under torchrun, and what
a device can do (compiled CPU kernels need a C++ compiler; subnormals flush on x86 only)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import time
from collections.abc import Mapping

import torch
from torch import nn

from ganopt.compiled import cpu_compiler
from ganopt.config import ConfigError, TrainerConfig
from ganopt.distributed import World

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> torch.device:
    """``auto`` → cuda when available, else cpu. Raises ConfigError for devices that are absent."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise ConfigError(
            [f"trainer.device: unknown device {spec!r} (use auto, cpu, cuda or cuda:N)"]
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError([f"trainer.device: {spec!r} requested but CUDA is not available"])
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                [
                    f"trainer.device: {spec!r} requested but only "
                    f"{torch.cuda.device_count()} CUDA device(s) exist"
                ]
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError([f"trainer.device: {spec!r} requested but MPS is not available"])
    elif device.type != "cpu":
        raise ConfigError(
            [f"trainer.device: unsupported device {spec!r} (use auto, cpu, cuda or cuda:N)"]
        )
    return device


def set_threads(threads: int | str, device: torch.device, model: object = None) -> str:
    """torch's intra-op threads on the CPU, and a line that says how many and why:
    trainer.threads=N sets N; auto the count :func:`auto_threads` chooses for ``model`` (its
    config node) on this machine now (docs/install.md, "Threads")."""
    if device.type != "cpu":
        return ""
    if threads != "auto":
        torch.set_num_threads(int(threads))
        return f"threads {int(threads)} (trainer.threads)"
    if omp := os.environ.get("OMP_NUM_THREADS"):  # torchrun, the joblib launcher, the tests
        return f"threads {torch.get_num_threads()} (auto: OMP_NUM_THREADS={omp})"  # torch's
    count, why = auto_threads(TORCH_THREADS, usable_cpus(), busy_cores(), small_mlp(model))
    torch.set_num_threads(count)
    return f"threads {count} (auto: {why})"


def spare_core(device: torch.device, processes: int = 1) -> bool:
    """Whether the run trains on the CPU and its threads, in each of its ``processes`` on this
    machine (torchrun's), leave one of its CPUs free: where work beside training (log-step
    measurements, evaluation, figures) costs the steps little; beside a run on every CPU it
    stalls all of the run's threads at once. On a GPU it would queue behind the steps
    on the same stream and add its memory to theirs. Other work on the machine is not asked
    about: it is the same work on either thread, and the choice stays the same from run to run
    (a snapshot of the load would not)."""
    if device.type != "cpu":
        return False
    return torch.get_num_threads() * processes < usable_cpus()


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: torch's own intra-op thread count, one per physical core (or OMP_NUM_THREADS), before any
#: run in this process set one
TORCH_THREADS = torch.get_num_threads()
#: MLPs up to this width (the toy default) run as fast on one thread as on two, their products
#: too small to split; at 256 units two threads are faster (scripts/bench.py --threads)
SMALL_MLP_WIDTH = 128


def small_mlp(model: object) -> bool:
    """Whether a model node (``cfg.model``, plain) is two MLPs no wider than SMALL_MLP_WIDTH (a
    node that is not one is not: building refuses it)."""
    nets = [model.get(k) for k in ("g", "d")] if isinstance(model, Mapping) else [None]
    return all(_small_mlp_net(net) for net in nets)


def _small_mlp_net(net: object) -> bool:
    if not isinstance(net, Mapping) or net.get("name") != "mlp":
        return False
    hidden = net.get("hidden")
    return isinstance(hidden, list) and all(
        isinstance(w, int) and w <= SMALL_MLP_WIDTH for w in hidden
    )


#: Linux's load figures; its fourth field counts the tasks runnable now ("3/412")
LOADAVG = "/proc/loadavg"


def busy_cores() -> float:
    """How many cores other work keeps busy now: the tasks /proc/loadavg counts as runnable,
    less this one (the median of five reads, 2 ms apart). Not the load average, which lags a
    minute behind and counts this process's own past work (a sweep's earlier jobs); where
    there is no /proc, it is all there is."""
    try:
        counts = []
        for _ in range(5):
            with open(LOADAVG, encoding="ascii") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
            time.sleep(0.002)
        return max(0.0, float(statistics.median(counts)))
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def auto_threads(cores: int, cpus: int, busy: float, small: bool) -> tuple[int, str]:
    """trainer.threads=auto where OMP_NUM_THREADS does not choose: the count never far from the
    fastest on an idle machine that does not collapse on a busy one (a thread waiting for a
    busy core stalls the others), and why. ``cores``: torch's own count; ``cpus``: those this
    process may run on; ``busy``: the cores other work keeps busy (:func:`busy_cores`);
    ``small``: a small MLP, on one thread never more than a few percent slower
    (docs/install.md, "Threads")."""
    others = f"{busy:g} of {cpus} cores busy"
    if small:
        return 1, f"small MLP; {others}"
    idle = max(1, math.floor(cpus - busy + 0.5))  # the cores other work leaves free
    return min(cores, idle), f"one per idle core; {others}"


def per_rank(
    device: torch.device, settings: TrainerConfig, world: World
) -> tuple[torch.device, TrainerConfig]:
    """trainer.batch_size is the global batch: each of the world's ranks takes its share, on
    its own GPU (LOCAL_RANK) when training on CUDA."""
    if settings.sync_batchnorm and device.type != "cuda":
        raise ConfigError(["trainer.sync_batchnorm: SyncBatchNorm needs CUDA devices"])
    if settings.batch_size % world.size:
        raise ConfigError(
            [
                f"trainer.batch_size: {settings.batch_size} does not split evenly "
                f"over {world.size} processes"
            ]
        )
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    per_rank = settings.batch_size // world.size
    progress = settings.progress and world.is_main  # one progress bar, rank 0's
    return device, dataclasses.replace(settings, batch_size=per_rank, progress=progress)


def speed_up_on_cuda(G: nn.Module, D: nn.Module, data: object, settings: TrainerConfig) -> None:
    """cuDNN autotuning and channels-last convolutions (left to the compiler's own choice of
    layouts under trainer.compile, whose backward graphs assume the strides they traced). bf16
    autocast and the compiled passes are applied by the Trainer."""
    torch.backends.cudnn.benchmark = True
    images = getattr(data, "kind", None) == "images"
    if settings.channels_last and images and not settings.compile:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)


def compiled_passes(settings: TrainerConfig, device: torch.device) -> TrainerConfig:
    """trainer.cuda_graphs compiles too, on CUDA (elsewhere it is ignored). A CPU's compiled
    kernels are built with a C++ compiler."""
    cuda_graphs = settings.cuda_graphs and device.type == "cuda"
    compiled = settings.compile or cuda_graphs
    if compiled and device.type == "cpu" and cpu_compiler() is None:
        raise ConfigError(
            [
                "trainer.compile: torch.compile builds CPU kernels with a C++ compiler and none "
                "was found (install g++ or set CXX)"
            ]
        )
    return dataclasses.replace(settings, compile=compiled, cuda_graphs=cuda_graphs)


def flushed_subnormals(settings: TrainerConfig, device: torch.device) -> TrainerConfig:
    """trainer.flush_denormal, where it can act: on a CPU that flushes subnormals (x86)."""
    if not settings.flush_denormal:
        return settings
    if device.type != "cpu":  # on by default: a GPU run's log does not mention it
        log.debug("trainer.flush_denormal acts on a CPU only: ignored on %s", device)
        return dataclasses.replace(settings, flush_denormal=False)
    if not torch.set_flush_denormal(True):
        log.info("trainer.flush_denormal: this CPU cannot flush subnormals, so it is ignored")
        return dataclasses.replace(settings, flush_denormal=False)
    torch.set_flush_denormal(False)  # on only within the optimizer steps
    return settings
