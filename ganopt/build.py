"""Config → objects: each component built from its registered name (ganopt/setup/registry.py)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from ganopt.clipping import WeightClipper
from ganopt.compiled import cpu_compiler
from ganopt.config import ConfigError, TrainerConfig, is_number
from ganopt.data import ImageBatches
from ganopt.diagnostics import Diagnostics, GradientAlarm, NonFiniteGuard
from ganopt.diagnostics.game import GameProbe
from ganopt.distributed import SINGLE_PROCESS, World
from ganopt.ema import EMA
from ganopt.evaluation import Evaluator, evaluator_for
from ganopt.flat import ELEMENTWISE, FlatOptimizerState, FlatParameters
from ganopt.logger import TensorBoardLogger
from ganopt.losses import GENERATOR_LOSSES, GANLoss
from ganopt.objective import Objective
from ganopt.optimizers import Extragradient
from ganopt.recorder import Figures, RunRecorder
from ganopt.regularizers import Consensus, GradientPenalty, Regularizer
from ganopt.schedule import LinearDecay
from ganopt.setup.checks import check
from ganopt.setup.registry import NAME, REGULARIZER_SLOTS, SLOTS, arguments, component
from ganopt.state import GlobalRNG, RunState
from ganopt.trainer import Trainer

log = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything a Trainer needs, built and on the device."""

    G: nn.Module
    D: nn.Module
    objective: Objective
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    #: by network, the parameters an optimizer steps as one buffer (trainer.flat_params)
    flat: dict[str, FlatParameters]
    data: object
    clipper: WeightClipper | None
    diagnostics: Diagnostics
    alarm: GradientAlarm
    evaluator: Evaluator | None
    settings: TrainerConfig
    device: torch.device
    schedule: LinearDecay | None = None
    ema: EMA | None = None
    world: World = SINGLE_PROCESS
    game: GameProbe | None = None
    #: the registered name chosen at each component slot ("loss": "wgan", "reg": "r1", ...)
    names: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def loss(self) -> GANLoss:
        return self.objective.loss

    @property
    def regularizers(self) -> list[Regularizer]:
        return self.objective.regularizers

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples and evaluation use: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.G

    def stateful(self) -> dict[str, object]:
        """The parts that hold a run's state, by checkpoint key: each has state_dict and
        load_state_dict, and the checkpoint is their collection (as in torchtitan)."""
        parts: dict[str, object] = {"G": self.G, "D": self.D}
        if self.ema is not None:
            parts["G_ema"] = self.ema.module
        for name, optimizer in (("G", self.opt_G), ("D", self.opt_D)):
            flat = self.flat.get(name)
            parts[f"opt_{name}"] = (
                optimizer if flat is None else FlatOptimizerState(optimizer, flat)
            )
        parts["rng"] = GlobalRNG()
        parts["alarm"] = self.alarm
        if hasattr(self.data, "state_dict"):
            parts["data"] = self.data
        return parts

    def make_trainer(self, run_dir: Path, logger: TensorBoardLogger) -> Trainer:
        """A Trainer wired with every component, each by name, writing into ``run_dir``."""
        run_dir = Path(run_dir)
        figures = Figures(lambda: self.sampler, self.D, self.loss, self.data)
        recorder = RunRecorder(
            run_dir=run_dir,
            logger=logger,
            settings=self.settings,
            alarm=self.alarm,
            figures=figures,
            world=self.world,
            evaluator=self.evaluator,
            schedule=self.schedule,
            device=self.device,
            game=self.game,
        )
        identity = {
            "components": self.names,
            "G": _shapes(self.G),
            "D": _shapes(self.D),
        }
        return Trainer(
            G=self.G,
            D=self.D,
            objective=self.objective,
            opt_G=self.opt_G,
            opt_D=self.opt_D,
            flat=self.flat,
            data=self.data,
            settings=self.settings,
            diagnostics=self.diagnostics,
            recorder=recorder,
            state=RunState(self.stateful(), identity, self.G.data_shape),
            guard=NonFiniteGuard(["D", "G"], self.device),
            clipper=self.clipper,
            ema=self.ema,
            world=self.world,
        )


def _shapes(network: nn.Module) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in network.named_parameters()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 -- user data code may use the legacy global RNG
    torch.manual_seed(seed)  # also seeds every CUDA device


def _plain(node: object) -> object:
    """A config node as plain Python values, interpolations resolved."""
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def build_generator(
    cfg: DictConfig, data_shape: tuple[int, ...], device: torch.device
) -> nn.Module:
    """The generator of ``cfg`` (freshly initialized) for data of ``data_shape``."""
    G = component("model.g", _plain(cfg.model.g)).build(
        z_dim=cfg.model.z_dim, data_shape=tuple(data_shape)
    )
    return G.to(device)


def _spectrally_normalized(module: nn.Module) -> bool:
    return any(hasattr(m, "parametrizations") for m in module.modules())


def _refuse_batchnorm_under_penalty(D: nn.Module, sources: dict[str, Regularizer | None]) -> None:
    """A gradient penalty is a per-sample quantity; BatchNorm makes D(x_i) depend on the rest of
    the batch, so ∇x_i D is not the gradient the penalty is defined on."""
    penalties = [name for name, r in sources.items() if isinstance(r, GradientPenalty)]
    if penalties and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules()):
        raise ConfigError(
            [
                f"model.d.norm: BatchNorm in D cannot be combined with the gradient penalty of "
                f"{penalties[0]} (the penalty is per sample, BatchNorm mixes the batch); use "
                f"model.d.norm=layer or none"
            ]
        )


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
    """cuDNN autotuning and channels-last convolutions (left to the compiler's own choice of
    layouts under trainer.compile, whose backward graphs assume the strides they traced). bf16
    autocast and the compiled passes are applied by the Trainer."""
    torch.backends.cudnn.benchmark = True
    images = getattr(data, "kind", None) == "images"
    if settings.channels_last and images and not settings.compile:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)


def _data_and_networks(
    cfg: DictConfig, settings: TrainerConfig, device: torch.device, world: World
) -> tuple[object, nn.Module, nn.Module]:
    """The data source, G and D, tried on a tiny batch, on the device, prepared for the
    world (SyncBatchNorm, data shards) and the device (cuDNN, channels-last)."""
    data = component("data", _plain(cfg.data)).build(batch_size=settings.batch_size, device=device)
    G = build_generator(cfg, data.shape, device)
    D = component("model.d", _plain(cfg.model.d)).build(data_shape=data.shape).to(device)
    dry_run(G, D, data, settings.batch_size, device)
    if world.distributed:
        if settings.sync_batchnorm:
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
            D = nn.SyncBatchNorm.convert_sync_batchnorm(D)
        if isinstance(data, ImageBatches):
            data.shard(world.rank, world.size, settings.seed)
    if device.type == "cuda":
        _speed_up_on_cuda(G, D, data, settings)
    elif settings.amp != "none" or settings.cuda_graphs:
        log.info("trainer.amp and trainer.cuda_graphs act on CUDA only: ignored on %s", device)
    return data, G, D


def build(cfg: DictConfig, world: World = SINGLE_PROCESS) -> Components:
    """Validate ``cfg`` and build the components of a run (of this rank, under torchrun).
    Writes nothing to disk; a config that cannot train raises ConfigError naming its key."""
    device = check(cfg)
    settings: TrainerConfig = OmegaConf.to_object(cfg.trainer)
    if world.distributed:
        device, settings = _per_rank(device, settings, world)
    settings = _compiled_passes(settings, device)
    settings = _flushed_subnormals(settings, device)
    set_threads(settings.threads, device)
    seed_everything(settings.seed)  # the same initial weights on every rank

    data, G, D = _data_and_networks(cfg, settings, device, world)
    loss = component("loss", _plain(cfg.loss)).build()
    clipper = WeightClipper(D.parameters(), cfg.optim.clip) if cfg.optim.clip else None
    regularizers = _regularizers(cfg, loss, D, clipper)
    lazy = _lazily_regularized(regularizers)
    one_buffer = {name: settings.flat_params and name not in lazy for name in "GD"}
    # G and D each get their own optimizer instance: their moment estimates must not mix.
    opt_G, flat_G = build_optimizer("optim.g", cfg.optim.g, G, settings.fused, one_buffer["G"])
    opt_D, flat_D = build_optimizer("optim.d", cfg.optim.d, D, settings.fused, one_buffer["D"])
    decay = cfg.optim.lr_decay
    schedule = LinearDecay([opt_G, opt_D], settings.steps, decay) if decay else None
    _check_update_rule(opt_G, opt_D, regularizers, world, settings.compile)
    diagnostics, alarm = _diagnostics(cfg, G, D, loss, data, settings.seed)
    evaluator = evaluator_for(data, device, seed=settings.seed) if world.is_main else None
    if world.distributed:
        seed_everything(settings.seed + world.rank)  # each rank its own z (and toy data)
    bf16 = settings.amp == "bf16" and device.type == "cuda"
    objective = Objective(loss, regularizers, autocast_bf16=bf16)
    return Components(
        G=G,
        D=D,
        objective=objective,
        opt_G=opt_G,
        opt_D=opt_D,
        flat={name: f for name, f in (("G", flat_G), ("D", flat_D)) if f is not None},
        data=data,
        clipper=clipper,
        diagnostics=diagnostics,
        alarm=alarm,
        evaluator=evaluator,
        settings=settings,
        device=device,
        schedule=schedule,
        ema=EMA(G, settings.ema_decay) if settings.ema_decay else None,
        world=world,
        names=_chosen_names(cfg),
        game=_game_probe(cfg.diagnostics, objective, G, D, data, settings)
        if world.is_main
        else None,
    )


def _chosen_names(cfg: DictConfig) -> dict[str, str]:
    """Each component slot's registered name (an empty reg2/reg3 is "none")."""
    names = {}
    for key in SLOTS:
        node = _plain(OmegaConf.select(cfg, key))
        names[key] = node[NAME] if isinstance(node, dict) else "none"
    return names


def _lazily_regularized(regularizers: list[Regularizer]) -> set[str]:
    """The networks a lazy regularizer steps on its own. Such a step leaves some weights
    without a gradient (R1 does not reach D's last bias), which a per-tensor optimizer skips
    and one buffer (trainer.flat_params) could not."""
    lazy = [r.network for r in regularizers if r.every > 1]
    return {name for network in lazy for name in ("GD" if network == "both" else network)}


def set_threads(threads: int | str, device: torch.device) -> None:
    """torch's intra-op threads on the CPU: trainer.threads=N sets N; auto leaves torch's own
    count, one per core, or OMP_NUM_THREADS, which torchrun and Hydra's joblib launcher set so
    that the processes they start share the cores (docs/install.md, "Threads")."""
    if threads != "auto" and device.type == "cpu":
        torch.set_num_threads(int(threads))


def build_optimizer(
    key: str, node: object, network: nn.Module, fused: bool = False, flat: bool = False
) -> tuple[torch.optim.Optimizer, FlatParameters | None]:
    """``optim.g``/``optim.d`` over ``network``'s parameters, built now so that a bad argument
    fails here, naming the key. ``betas: [0, 0.9]`` (ints from the command line) become floats.
    ``flat`` (trainer.flat_params): an elementwise optimizer steps the parameters as one
    buffer (ganopt/flat.py), returned beside it. ``fused``: torch's fused kernels where the
    optimizer has them (docs/performance.md); otherwise, over separate tensors, its foreach
    implementation, which torch picks by itself on CUDA but not on a CPU, and which computes
    what the per-tensor loop does, bit for bit, in fewer calls. An ``optim.g.fused`` or
    ``optim.g.foreach`` of the config wins."""
    chosen = component(key, _plain(node))
    optimizer, settings = chosen.factory, dict(chosen.kwargs)
    _check_switches(key, optimizer, settings)
    params = list(network.parameters())
    elementwise = isinstance(optimizer, type) and issubclass(optimizer, ELEMENTWISE)
    buffer = (
        FlatParameters(params) if flat and elementwise and FlatParameters.fits(params) else None
    )
    if buffer is not None:
        params = [buffer.flat]
    settings |= _implementation(key, optimizer, settings, fused, single=buffer is not None)
    if "betas" in settings:
        betas = settings["betas"]
        numbers = isinstance(betas, (list, tuple)) and len(betas) == 2
        if not numbers or not all(is_number(b) for b in betas):
            raise ConfigError([f"{key}.betas: must be two numbers, got {betas!r}"])
        settings["betas"] = tuple(float(b) for b in betas)
    try:
        return optimizer(params, **settings), buffer
    except (TypeError, ValueError, RuntimeError, IndexError) as e:
        raise ConfigError([f"{key}: {e}"]) from None


def _implementation(
    key: str, optimizer: type, settings: Mapping[str, object], fused: bool, single: bool
) -> dict[str, bool]:
    """The keyword that picks the optimizer's implementation: fused, foreach, or none. On a
    ``single`` tensor (trainer.flat_params) the per-tensor loop makes fewer calls than foreach."""
    if "fused" in settings or "foreach" in settings:
        return {}
    parameters = arguments(optimizer)
    if fused:
        if "fused" in parameters:
            return {"fused": True}
        instead = "its loop over one buffer" if single else "foreach kernels"
        log.info(
            "trainer.fused: %s has no fused kernel, so %s runs %s", optimizer.__name__, key, instead
        )
    return {"foreach": not single} if "foreach" in parameters else {}


def _check_switches(key: str, optimizer: type, settings: Mapping[str, object]) -> None:
    """torch's optimizers take their switches (amsgrad, nesterov, foreach, fused...) unchecked,
    so ``+optim.d.foreach=maybe`` would run as true: each must be true or false (foreach and
    fused, whose default is torch's choice, may also be null)."""
    parameters = arguments(optimizer)
    for name, value in settings.items():
        optional = name in ("foreach", "fused")
        if not (isinstance(parameters[name].default, bool) or optional):
            continue
        if not isinstance(value, bool) and not (optional and value is None):
            choices = "true, false or null" if optional else "true or false"
            raise ConfigError([f"{key}.{name}: must be {choices}, got {value!r}"])


def _regularizers(
    cfg: DictConfig, loss: GANLoss, D: nn.Module, clipper: WeightClipper | None
) -> list[Regularizer]:
    """The loss's own term (WGAN-GP's penalty) and those of ``reg`` (and ``reg2``, ``reg3``:
    ``+reg@reg2=instance_noise``); refuses a penalty under
    BatchNorm and warns about an unconstrained WGAN critic."""
    sources = {f"loss={loss.name}": loss.regularizer}
    for key in REGULARIZER_SLOTS:
        node = _plain(cfg.get(key))
        if node is not None:
            chosen = component(key, node)
            sources[f"{key}={chosen.name}"] = chosen.build()
    regularizers = [r for r in sources.values() if r is not None]
    _refuse_batchnorm_under_penalty(D, sources)
    constrained = (
        clipper
        or _spectrally_normalized(D)
        or any(isinstance(r, GradientPenalty) for r in regularizers)
    )
    if loss.name == "wgan" and not constrained:
        log.warning(
            "loss=wgan without a Lipschitz constraint (optim.clip, a gradient penalty or "
            "model.d.spectral_norm): the critic is unbounded and the run will likely diverge"
        )
    return regularizers


def _check_update_rule(
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    regularizers: list[Regularizer],
    world: World,
    compiled: bool,
) -> None:
    """Extragradient looks ahead with both players or neither; consensus's double backward
    through both networks has no DistributedDataParallel form, and no compiled one."""
    problems = []
    if isinstance(opt_G, Extragradient) != isinstance(opt_D, Extragradient):
        problems.append(
            f"optim.g, optim.d: extragradient extrapolates both players or neither, got "
            f"{type(opt_G).__name__} for G and {type(opt_D).__name__} for D"
        )
    consensus = any(isinstance(r, Consensus) for r in regularizers)
    if world.distributed and consensus:
        problems.append("reg: consensus optimization is not supported under torchrun")
    if compiled and consensus:
        problems.append(
            "trainer.compile: consensus optimization differentiates both networks twice, "
            "which compiled graphs cannot; drop one of them"
        )
    if problems:
        raise ConfigError(problems)


def _compiled_passes(settings: TrainerConfig, device: torch.device) -> TrainerConfig:
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


def _flushed_subnormals(settings: TrainerConfig, device: torch.device) -> TrainerConfig:
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


def _same_g_objective(cls: type[GANLoss], loss: GANLoss) -> bool:
    """Whether ``cls`` trains G as ``loss`` does (hinge and wgan_gp as wgan); a relativistic G
    loss is its own D loss with real and fake swapped, so both must match."""
    if cls.g_loss is not type(loss).g_loss:
        return False
    return not cls.uses_real_in_g or cls.d_loss is type(loss).d_loss


def _diagnostics(
    cfg: DictConfig, G: nn.Module, D: nn.Module, loss: GANLoss, data: object, seed: int
) -> tuple[Diagnostics, GradientAlarm]:
    diag = cfg.diagnostics
    shadow = diag.shadow if diag.shadow is not None else getattr(data, "kind", None) == "points"
    others = (
        {  # every generator loss that would train G differently
            n: cls() for n, cls in GENERATOR_LOSSES.items() if not _same_g_objective(cls, loss)
        }
        if shadow
        else {}
    )
    diagnostics = Diagnostics(G, D, loss, others, cfg.optim.clip, diag.input_gradients, seed=seed)
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
    """The game's spectrum on its interval (at each evaluation on 2-D data by default)."""
    every = diag.game_every
    if every is None:
        if getattr(data, "kind", None) != "points":
            return None
        every = settings.eval_every
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


#: bytes of activations per sample element kept for one step: the forward's saved tensors,
#: their gradients, and a penalty's second backward; a rough factor, for an upper estimate
BYTES_PER_ACTIVATION = 4 * 3


def dry_run(
    G: nn.Module, D: nn.Module, data: object, batch_size: int, device: torch.device
) -> None:
    """One forward of G and D on two samples, in eval mode, without gradients, from a private
    RNG: a network or data source that cannot run fails here, naming its key, instead of once
    training has started; and the activations it counts estimate what a batch will need, so a
    batch that cannot fit is refused with the estimate. Changes no state."""
    data_rng = torch.Generator(device=data.rng_device).manual_seed(0)
    rng = torch.Generator(device=device).manual_seed(0)
    counts = {"G": 0, "D": 0}
    modes = G.training, D.training
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out, k=key: counts.__setitem__(k, counts[k] + out.numel())
        )
        for key, net in (("G", G), ("D", D))
        for m in net.modules()
        if not list(m.children())
    ]
    G.eval(), D.eval()
    try:
        with torch.no_grad():
            real = _run("data", lambda: data.sample(2, generator=data_rng))
            z = torch.randn(2, G.z_dim, device=device, generator=rng)
            fake = _run("model.g", lambda: G(z))
            if tuple(fake.shape[1:]) != tuple(data.shape):
                raise ConfigError(
                    [
                        f"model.g: makes samples of shape {tuple(fake.shape[1:])}, the data's are "
                        f"{tuple(data.shape)}"
                    ]
                )
            out = _run("model.d", lambda: D(torch.cat([real, fake])))
            if tuple(out.shape) != (4,):
                raise ConfigError(
                    [f"model.d: must give one logit per sample, gave {tuple(out.shape)}"]
                )
    finally:
        for hook in hooks:
            hook.remove()
        G.train(modes[0]), D.train(modes[1])
    per_sample = counts["G"] / 2 + counts["D"] / 4 * 2 + math.prod(data.shape) * 2
    _refuse_oversized_batch(batch_size, per_sample * BYTES_PER_ACTIVATION, device)


def _run(key: str, step: Callable[[], torch.Tensor]) -> torch.Tensor:
    try:
        return step()
    except ConfigError:
        raise
    except Exception as e:  # any failure of a network or data source on a tiny batch
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError([f"{key}: cannot run ({first})"]) from None


def _refuse_oversized_batch(batch_size: int, bytes_per_sample: float, device: torch.device) -> None:
    needed = batch_size * bytes_per_sample
    available = available_memory(device)
    if available is not None and needed > available:
        raise ConfigError(
            [
                f"trainer.batch_size: {batch_size} needs about {_gb(needed)} for one step's "
                f"activations (an estimate), and {device} has {_gb(available)} available"
            ]
        )


def available_memory(device: torch.device) -> float | None:
    """Free bytes on ``device``: CUDA's own count, or the kernel's MemAvailable on Linux."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"
