"""Config → objects. The only module that calls ``hydra.utils.instantiate``."""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganopt.clipping import WeightClipper
from ganopt.config import ConfigError, TrainerConfig, validate
from ganopt.data import ImageBatches
from ganopt.diagnostics import Diagnostics, GradientAlarm
from ganopt.distributed import SINGLE_PROCESS, World
from ganopt.evaluation import Evaluator, evaluator_for
from ganopt.logger import TensorBoardLogger
from ganopt.losses import GENERATOR_LOSSES, GANLoss
from ganopt.regularizers import Regularizer
from ganopt.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything a Trainer needs, built and on the device."""

    G: nn.Module
    D: nn.Module
    loss: GANLoss
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    data: object
    clipper: WeightClipper | None
    diagnostics: Diagnostics
    alarm: GradientAlarm
    evaluator: Evaluator | None
    regularizers: list[Regularizer]
    settings: TrainerConfig
    device: torch.device
    world: World = SINGLE_PROCESS

    def make_trainer(self, run_dir: Path, logger: TensorBoardLogger) -> Trainer:
        """A Trainer wired with every component: the one place that does it."""
        return Trainer(
            self.G,
            self.D,
            self.loss,
            self.opt_G,
            self.opt_D,
            self.data,
            self.settings,
            run_dir,
            logger,
            self.clipper,
            self.diagnostics,
            self.alarm,
            self.evaluator,
            self.regularizers,
            self.world,
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- user data code may use the legacy global RNG
    torch.manual_seed(seed)  # also seeds every CUDA device


def _build(key: str, node: DictConfig, **kwargs: object) -> object:
    """instantiate, turning any failure into a ConfigError that names the config key."""
    try:
        return instantiate(node, **kwargs)
    except (InstantiationException, TypeError, ValueError) as e:
        # Hydra wraps the target's own error; its message is the one that says what is wrong
        cause = e.__cause__ if isinstance(e, InstantiationException) and e.__cause__ else e
        raise ConfigError([f"{key}: {cause}".replace("\n", " ")]) from e


def _per_rank(
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


def _speed_up_on_cuda(G: nn.Module, D: nn.Module, data: object, settings: TrainerConfig) -> None:
    """cuDNN autotuning, channels-last convolutions, torch.compile (in place, so checkpoints
    keep their keys). bf16 autocast is applied by the Trainer."""
    torch.backends.cudnn.benchmark = True
    if settings.channels_last and len(getattr(data, "shape", ())) == 3:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    if settings.compile:
        G.compile()
        D.compile()


def build(cfg: DictConfig, world: World = SINGLE_PROCESS) -> Components:
    """Validate ``cfg`` and build the components of a run (of this rank, under torchrun).
    Writes nothing to disk."""
    device = validate(cfg)
    settings: TrainerConfig = OmegaConf.to_object(cfg.trainer)
    if world.distributed:
        device, settings = _per_rank(device, settings, world)
    seed_everything(settings.seed)  # the same initial weights on every rank

    data = _build("data", cfg.data, batch_size=settings.batch_size, device=device)
    G = _build("model.g", cfg.model.g, z_dim=cfg.model.z_dim, data_shape=data.shape).to(device)
    D = _build("model.d", cfg.model.d, data_shape=data.shape).to(device)
    if world.distributed:
        if settings.sync_batchnorm:
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
            D = nn.SyncBatchNorm.convert_sync_batchnorm(D)
        if isinstance(data, ImageBatches):
            data.shard(world.rank, world.size, settings.seed)
    if device.type == "cuda":
        _speed_up_on_cuda(G, D, data, settings)
    elif settings.amp != "none" or settings.compile:
        log.info("trainer.amp and trainer.compile act on CUDA only: ignored on %s", device)
    loss = _build("loss", cfg.loss)
    # G and D each get their own optimizer instance: their moment estimates must not mix.
    opt_G = _build("optim.g", cfg.optim.g)(G.parameters())
    opt_D = _build("optim.d", cfg.optim.d)(D.parameters())
    clipper = WeightClipper(D.parameters(), cfg.optim.clip) if cfg.optim.clip else None
    reg = _build("reg", cfg.reg) if cfg.reg.get("_target_") else None
    regularizers = [r for r in (loss.regularizer, reg) if r is not None]

    diag = cfg.diagnostics
    shadow = diag.shadow if diag.shadow is not None else len(data.shape) == 1
    others = (
        {  # every generator loss that would train G differently
            n: cls() for n, cls in GENERATOR_LOSSES.items() if cls.g_loss is not type(loss).g_loss
        }
        if shadow
        else {}
    )
    diagnostics = Diagnostics(
        G, D, loss, others, cfg.optim.clip, diag.input_gradients, seed=settings.seed
    )
    alarm = GradientAlarm(diag.vanishing_ratio, diag.exploding_ratio)
    evaluator = evaluator_for(data, device, seed=settings.seed) if world.is_main else None
    if world.distributed:
        seed_everything(settings.seed + world.rank)  # each rank its own z (and toy data)
    return Components(
        G,
        D,
        loss,
        opt_G,
        opt_D,
        data,
        clipper,
        diagnostics,
        alarm,
        evaluator,
        regularizers,
        settings,
        device,
        world,
    )
