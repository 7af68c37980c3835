"""Config → the built parts of a run: each component from its registered name, checked, seeded,
on its device; then wired, once, into a Trainer that writes into a run directory."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ganopt.checkpoint import Checkpointer
from ganopt.clipping import WeightClipper
from ganopt.components import Components
from ganopt.config import ConfigError, TrainerConfig
from ganopt.data import ImageBatches
from ganopt.diagnostics import Diagnostics, GradientAlarm
from ganopt.diagnostics.beside import BesideWorker
from ganopt.diagnostics.game import GameProbe
from ganopt.diagnostics.memorization import Memorization
from ganopt.distributed import SINGLE_PROCESS, World
from ganopt.ema import EMA
from ganopt.evaluation import evaluator_for
from ganopt.flat import FlatParameters
from ganopt.logger import TensorBoardLogger
from ganopt.lookahead import LookaheadMinmax
from ganopt.losses import GENERATOR_LOSSES, GANLoss
from ganopt.objective import Objective
from ganopt.recorder import RunRecorder
from ganopt.regularizers import Regularizer
from ganopt.schedule import LinearDecay
from ganopt.setup.checks import (
    check,
    refuse_augmented_points,
    refuse_batchnorm_under_penalty,
    warn_unconstrained_critic,
)
from ganopt.setup.device import (
    compiled_passes,
    flushed_subnormals,
    per_rank,
    set_threads,
    spare_core,
    speed_up_on_cuda,
)
from ganopt.setup.optimizers import build_optimizer, lazily_regularized
from ganopt.setup.preflight import dry_run
from ganopt.setup.registry import NAME, REGULARIZER_SLOTS, SLOTS, component, plain
from ganopt.trainer import Trainer

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- user data code may use the legacy global RNG
    torch.manual_seed(seed)  # also seeds every CUDA device


def build_generator(
    cfg: DictConfig, data_shape: tuple[int, ...], device: torch.device
) -> nn.Module:
    """The generator of ``cfg`` (freshly initialized) for data of ``data_shape``."""
    G = component("model.g", plain(cfg.model.g)).build(
        z_dim=cfg.model.z_dim, data_shape=tuple(data_shape)
    )
    return G.to(device)


def _data_and_networks(
    cfg: DictConfig, settings: TrainerConfig, device: torch.device, world: World
) -> tuple[object, nn.Module, nn.Module]:
    """The data source, G and D, tried on a tiny batch, on the device, prepared for the
    world (SyncBatchNorm, data shards) and the device (cuDNN, channels-last)."""
    data = component("data", plain(cfg.data)).build(batch_size=settings.batch_size, device=device)
    G = build_generator(cfg, data.shape, device)
    D = component("model.d", plain(cfg.model.d)).build(data_shape=data.shape).to(device)
    dry_run(G, D, data, settings.batch_size, device)
    if world.distributed:
        if settings.sync_batchnorm:
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
            D = nn.SyncBatchNorm.convert_sync_batchnorm(D)
        if isinstance(data, ImageBatches):
            data.shard(world.rank, world.size, settings.seed)
    if device.type == "cuda":
        speed_up_on_cuda(G, D, data, settings)
    elif settings.amp != "none" or settings.cuda_graphs:
        log.info("trainer.amp and trainer.cuda_graphs act on CUDA only: ignored on %s", device)
    return data, G, D


def build(cfg: DictConfig, world: World = SINGLE_PROCESS) -> Components:
    """Check ``cfg`` (ganopt/setup/checks.py) and build the parts of a run (of this rank, under
    torchrun). Writes nothing to disk; a config that cannot train raises ConfigError naming its
    key."""
    device = check(cfg, world)
    settings: TrainerConfig = OmegaConf.to_object(cfg.trainer)
    if world.distributed:
        device, settings = per_rank(device, settings, world)
    settings = compiled_passes(settings, device)
    settings = flushed_subnormals(settings, device)
    threads = set_threads(settings.threads, device, plain(cfg.model))
    seed_everything(settings.seed)  # the same initial weights on every rank

    data, G, D = _data_and_networks(cfg, settings, device, world)
    loss = component("loss", plain(cfg.loss)).build()
    clipper = WeightClipper(D.parameters(), cfg.optim.clip) if cfg.optim.clip else None
    regularizers = _regularizers(cfg, loss, D, clipper)
    objective = _objective(cfg, loss, regularizers, data, settings, device)
    (opt_G, opt_D), flat = _optimizers(cfg, settings, (G, D), regularizers)
    decay = cfg.optim.lr_decay
    schedule = LinearDecay([opt_G, opt_D], settings.steps, decay) if decay else None
    beside = spare_core(device, world.local_size)
    diagnostics, alarm = _diagnostics(cfg, G, D, loss, data, settings.seed, beside)
    success = OmegaConf.to_container(cfg.objective.success) if cfg.objective.success else None
    evaluator = evaluator_for(data, device, settings.seed, success) if world.is_main else None
    if world.distributed:
        seed_everything(settings.seed + world.rank)  # each rank its own z (and toy data)
    return Components(
        G=G,
        D=D,
        objective=objective,
        opt_G=opt_G,
        opt_D=opt_D,
        flat=flat,
        data=data,
        clipper=clipper,
        diagnostics=diagnostics,
        alarm=alarm,
        evaluator=evaluator,
        settings=settings,
        device=device,
        schedule=schedule,
        ema=EMA(G, settings.ema_decay) if settings.ema_decay else None,
        lookahead=_lookahead(cfg.optim.lookahead, G, D),
        world=world,
        names=_chosen_names(cfg),
        threads=threads,
        beside=beside,
        game=_game_probe(cfg.diagnostics, objective, G, D, data, settings)
        if world.is_main
        else None,
    )


def _objective(
    cfg: DictConfig,
    loss: GANLoss,
    regularizers: list[Regularizer],
    data: object,
    settings: TrainerConfig,
    device: torch.device,
) -> Objective:
    """The loss and its regularizers, with the augmentation of D's inputs (aug=diffaugment,
    images only) and, for images, what D's outputs on the reals it trains on and on a fixed
    batch of held-out ones show on log steps (docs/limited_data.md)."""
    aug = component("aug", plain(cfg.aug))
    refuse_augmented_points(aug.name, cfg.data.name, data)
    memorization = None
    if getattr(data, "kind", None) == "images":
        heldout = getattr(data, "heldout", None)
        some = heldout is not None and len(heldout) > 0
        memorization = Memorization(heldout[: settings.batch_size].to(device) if some else None)
    return Objective(
        loss,
        regularizers,
        autocast_bf16=settings.amp == "bf16" and device.type == "cuda",
        augment=aug.build(),
        memorization=memorization,
    )


def _optimizers(
    cfg: DictConfig,
    settings: TrainerConfig,
    networks: tuple[nn.Module, nn.Module],
    regularizers: list[Regularizer],
) -> tuple[tuple[torch.optim.Optimizer, torch.optim.Optimizer], dict[str, FlatParameters]]:
    """G's and D's own optimizer instances (their moment estimates must not mix), and the
    networks whose parameters each steps as one buffer (trainer.flat_params)."""
    lazy = lazily_regularized(regularizers)
    optimizers, flat = [], {}
    for name, key, network in zip("GD", ("optim.g", "optim.d"), networks, strict=True):
        one_buffer = settings.flat_params and name not in lazy
        node = OmegaConf.select(cfg, key)
        optimizer, buffer = build_optimizer(key, node, network, settings.fused, one_buffer)
        optimizers.append(optimizer)
        if buffer is not None:
            flat[name] = buffer
    return (optimizers[0], optimizers[1]), flat


def _lookahead(node: object, G: nn.Module, D: nn.Module) -> LookaheadMinmax | None:
    """optim.lookahead: {k, alpha}, or null."""
    if node is None:
        return None
    settings = plain(node)
    if not isinstance(settings, dict) or set(settings) != {"k", "alpha"}:
        raise ConfigError([f"optim.lookahead: {{k: int, alpha: float}} or null, got {settings!r}"])
    try:
        return LookaheadMinmax([G, D], settings["k"], settings["alpha"])
    except ValueError as e:
        raise ConfigError([f"optim.lookahead: {e}"]) from None


def _chosen_names(cfg: DictConfig) -> dict[str, str]:
    """Each component slot's registered name (an empty reg2/reg3 is "none"). ``aug`` joins only
    when it augments: checkpoints written before augmentation existed name none, and resume
    them as aug=none."""
    names = {}
    for key in SLOTS:
        node = plain(OmegaConf.select(cfg, key))
        names[key] = node[NAME] if isinstance(node, dict) else "none"
    if names.get("aug") == "none":
        del names["aug"]
    if (lookahead := plain(cfg.optim.lookahead)) is not None:  # its slow weights are state
        names["optim.lookahead"] = f"k={lookahead.get('k')}, alpha={lookahead.get('alpha')}"
    return names


def _regularizers(
    cfg: DictConfig, loss: GANLoss, D: nn.Module, clipper: WeightClipper | None
) -> list[Regularizer]:
    """The loss's own term (WGAN-GP's penalty) and those of ``reg`` (and ``reg2``, ``reg3``:
    ``+reg@reg2=instance_noise``); refuses a penalty under
    BatchNorm and warns about an unconstrained WGAN critic."""
    sources = {f"loss={loss.name}": loss.regularizer}
    for key in REGULARIZER_SLOTS:
        node = plain(cfg.get(key))
        if node is not None:
            chosen = component(key, node)
            sources[f"{key}={chosen.name}"] = chosen.build()
    regularizers = [r for r in sources.values() if r is not None]
    refuse_batchnorm_under_penalty(D, sources)
    warn_unconstrained_critic(loss.name, D, regularizers, clipper)
    return regularizers


def _same_g_objective(cls: type[GANLoss], loss: GANLoss) -> bool:
    """Whether ``cls`` trains G as ``loss`` does (hinge and wgan_gp as wgan); a relativistic G
    loss is its own D loss with real and fake swapped, so both must match."""
    if cls.g_loss is not type(loss).g_loss:
        return False
    return not cls.uses_real_in_g or cls.d_loss is type(loss).d_loss


def _diagnostics(
    cfg: DictConfig,
    G: nn.Module,
    D: nn.Module,
    loss: GANLoss,
    data: object,
    seed: int,
    beside: bool,
) -> tuple[Diagnostics, GradientAlarm]:
    """The log steps' measurements, those that need no live graph beside training where
    ``beside`` (a CPU with a core the run's threads leave free)."""
    diag = cfg.diagnostics
    shadow = diag.shadow if diag.shadow is not None else getattr(data, "kind", None) == "points"
    others = (
        {  # every generator loss that would train G differently
            n: cls() for n, cls in GENERATOR_LOSSES.items() if not _same_g_objective(cls, loss)
        }
        if shadow
        else {}
    )
    worker = BesideWorker() if beside else None
    diagnostics = Diagnostics(
        G, D, loss, others, cfg.optim.clip, diag.input_gradients, seed=seed, beside=worker
    )
    alarm = GradientAlarm(
        diag.vanishing_ratio, diag.exploding_ratio, diag.stalled_ratio, diag.stalled_logs
    )
    return diagnostics, alarm


def _game_probe(
    diag: DictConfig,
    objective: Objective,
    G: nn.Module,
    D: nn.Module,
    data: object,
    settings: TrainerConfig,
) -> GameProbe | None:
    """The game's spectrum on its interval; by default on 2-D data only, every
    max(eval_every, steps // 2) steps and at the end (the default run: at 2500 and 5000; with
    eval_every=0 at the end only), a few percent of a run (docs/performance.md, "Where a
    default run's time goes")."""
    every = diag.game_every
    if every is None:
        if getattr(data, "kind", None) != "points":
            return None
        every = settings.eval_every and max(settings.eval_every, settings.steps // 2)
    elif every == 0:
        return None
    return GameProbe(
        objective=objective,
        G=G,
        D=D,
        data=data,
        batch_size=settings.batch_size,
        every=every,
        k=diag.game_k,
        iters=diag.game_iters,
        seed=settings.seed,
    )


def make_trainer(parts: Components, run_dir: Path, logger: TensorBoardLogger) -> Trainer:
    """A Trainer of ``parts``, writing into ``run_dir``: its checkpoints, and what it shows."""
    s, run_dir = parts.settings, Path(run_dir)
    checkpoints = Checkpointer(
        run_dir / "checkpoints", s.ckpt_every, s.keep_ckpts, s.steps, parts.world.is_main
    )
    recorder = RunRecorder(parts, run_dir=run_dir, logger=logger, checkpoints=checkpoints)
    return Trainer(parts, recorder=recorder, checkpoints=checkpoints)
