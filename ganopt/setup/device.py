"""Where a run computes: the device, CPU threads, each rank's share under torchrun, and what
a device can do (compiled CPU kernels need a C++ compiler; subnormals flush on x86 only)."""

from __future__ import annotations

import dataclasses
import logging

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


def set_threads(threads: int | str, device: torch.device) -> None:
    """torch's intra-op threads on the CPU: trainer.threads=N sets N; auto leaves torch's own
    count, one per core, or OMP_NUM_THREADS, which torchrun and Hydra's joblib launcher set so
    that the processes they start share the cores (docs/install.md, "Threads")."""
    if threads != "auto" and device.type == "cpu":
        torch.set_num_threads(int(threads))


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
    if device.type != "cpu":
        log.info("trainer.flush_denormal acts on a CPU only: ignored on %s", device)
        return dataclasses.replace(settings, flush_denormal=False)
    if not torch.set_flush_denormal(True):
        log.info("trainer.flush_denormal: this CPU cannot flush subnormals, so it is ignored")
        return dataclasses.replace(settings, flush_denormal=False)
    torch.set_flush_denormal(False)  # on only within the optimizer steps
    return settings
