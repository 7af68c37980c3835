"""The training loop: alternating D and G updates, read top to bottom like Algorithm 1 of the
WGAN paper. Everything it needs arrives built; diagnostics hang off the log step."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from ganopt.checkpoint import CheckpointDir, rng_state, set_rng_state
from ganopt.clipping import WeightClipper
from ganopt.config import TrainerConfig
from ganopt.diagnostics import Diagnostics, GradientAlarm, NonFiniteGuard, Probe, to_host
from ganopt.diagnostics.flow import GradientFlow
from ganopt.distributed import SINGLE_PROCESS, World
from ganopt.ema import EMA
from ganopt.evaluation import Evaluator, generate
from ganopt.logger import TensorBoardLogger, figure_to_rgb
from ganopt.objective import Objective, Phase
from ganopt.plots import gradient_flow_figure, image_grid, toy_samples_figure
from ganopt.rundir import WriteError, write_atomic
from ganopt.schedule import LinearDecay

log = logging.getLogger(__name__)

#: metrics.json keys → the logged scalar they report (its value at the last log step).
FINAL_SCALARS = {
    "loss_D": "loss/D",
    "loss_G": "loss/G",
    "grad_norm_G": "grad_norm/G/total",
    "grad_norm_D": "grad_norm/D/total",
    "grad_signal_G": "grad_signal/G",
}


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends, so that what it writes is written whole:
    a checkpoint and the metrics.json that records it."""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass
class RunResult:
    """How a run ended: ok, diverged, interrupted or failed (README, "How a run ends")."""

    status: str
    step: int
    metrics: dict[str, object] = field(default_factory=dict)
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 128 + (self.signal or signal.SIGINT)
        return 1 if self.status == "failed" else 0


#: what an allocation that does not fit raises (torch.OutOfMemoryError is new in torch 2.5)
OUT_OF_MEMORY = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


def _is_out_of_memory(error: RuntimeError) -> bool:
    text = str(error)
    return "out of memory" in text or "can't allocate memory" in text


def _failure(error: BaseException, step: int) -> str:
    """One line for a failure the run can name: a full disk, or memory."""
    if isinstance(error, WriteError):
        return str(error)
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"out of memory during step {step} ({first[:160]}); lower trainer.batch_size"


def non_finite_network(state: dict[str, object]) -> str | None:
    """ "G" or "D" when one of that network's weights or optimizer statistics is NaN or
    infinite (Adam's exp_avg_sq can overflow while the losses still look fine), else None."""
    for network, keys in (("G", ("G", "opt_G", "G_ema")), ("D", ("D", "opt_D"))):
        tensors = [t for key in keys if key in state for t in _tensors(state[key])]
        floating = [t for t in tensors if t.is_floating_point()]
        if floating and not torch.stack([torch.isfinite(t).all() for t in floating]).all():
            return network
    return None


def _hyperparameters(group: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in group.items() if k != "params" and not isinstance(v, Tensor)}


def _load_part(name: str, load: Callable[[], object]) -> object:
    """Load one part of a checkpoint; whatever goes wrong is a ValueError naming the part."""
    try:
        return load()
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        detail = " ".join(str(e).split())[:200] or type(e).__name__
        raise ValueError(f"the checkpoint's {name} does not fit this config: {detail}") from None


def _step(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"step must be an int >= 0, got {value!r}")
    return value


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _tensors(tree: object) -> list[Tensor]:
    if isinstance(tree, Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for v in tree.values() for t in _tensors(v)]
    if isinstance(tree, (list, tuple)):
        return [t for v in tree for t in _tensors(v)]
    return []


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a run stops cleanly after
    the step in flight. A second Ctrl-C aborts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("%s received: stopping after this step", signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        except ValueError:  # not the main thread: leave signals to whoever owns them
            self._previous = {}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class Trainer:
    """Trains G and D with separate optimizers; logs to TensorBoard; writes checkpoints and
    ``metrics.json`` into ``run_dir``."""

    def __init__(
        self,
        *,
        G: nn.Module,
        D: nn.Module,
        objective: Objective,
        opt_G: torch.optim.Optimizer,
        opt_D: torch.optim.Optimizer,
        data: Iterator[Tensor],
        settings: TrainerConfig,
        run_dir: str | Path,
        logger: TensorBoardLogger,
        diagnostics: Diagnostics,
        alarm: GradientAlarm,
        clipper: WeightClipper | None = None,
        evaluator: Evaluator | None = None,
        world: World = SINGLE_PROCESS,
        schedule: LinearDecay | None = None,
    ) -> None:
        self.G, self.D, self.objective = G, D, objective
        self.loss = objective.loss
        self.opt_G, self.opt_D = opt_G, opt_D
        self.data = data
        self.settings = settings
        self.run_dir = Path(run_dir)
        self.logger = logger
        self.clipper = clipper
        self.diagnostics, self.alarm = diagnostics, alarm
        self.evaluator = evaluator
        self.schedule = schedule
        self.phases = objective.phases(settings.d_steps)
        self.ema = EMA(G, settings.ema_decay) if settings.ema_decay else None
        # Under torchrun each network trains through its own DistributedDataParallel wrapper;
        # every other forward (no-grad, frozen D, diagnostics, penalties) uses the plain module.
        self.world = world
        self.device = next(G.parameters()).device
        self.G_train, self.D_train = world.wrap(G, self.device), world.wrap(D, self.device)
        self.d_params = [p for p in D.parameters() if p.requires_grad]
        self.checkpoints = CheckpointDir(self.run_dir / "checkpoints", keep=settings.keep_ckpts)
        self.guard = NonFiniteGuard(["D", "G"], self.device)
        self.step = 0  # completed generator updates
        self.saved_step: int | None = None  # of the newest checkpoint this run wrote
        self._configured = {  # the optimizers' settings as the config made them
            name: [_hyperparameters(group) for group in opt.param_groups]
            for name, opt in (("opt_G", opt_G), ("opt_D", opt_D))
        }
        self.last_logged: dict[str, float] = {}
        self.flows = {network: GradientFlow(network) for network in ("G", "D")}  # from this fit
        self.last_metrics: dict[str, float | None] = {}  # the latest evaluation
        self._clock = self._fit_start = (0, time.perf_counter())  # (step, time): last log, fit

    # ---------------------------------------------------------------- the algorithm
    def fit(self) -> RunResult:
        """Train until ``settings.steps`` generator updates, a signal, or divergence."""
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._fit_start = self._clock = (self.step, time.perf_counter())
        bar = tqdm(
            total=self.settings.steps,
            initial=self.step,
            unit="step",
            disable=not self.settings.progress,
            dynamic_ncols=True,
            mininterval=1.0,
        )
        try:
            self.log_real_samples()
            with StopRequest() as stop:
                return self._train(stop, bar)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, without another checkpoint
            return self._finish("interrupted", signum=signal.SIGINT, aborted=True)
        except (WriteError, MemoryError, *OUT_OF_MEMORY) as e:
            return self._finish("failed", error=_failure(e, self.step + 1))
        except RuntimeError as e:
            if not _is_out_of_memory(e):
                self._finish("failed", error=f"{type(e).__name__}: {e}")
                raise
            return self._finish("failed", error=_failure(e, self.step + 1))
        except Exception as e:
            self._finish("failed", error=f"{type(e).__name__}: {e}")
            raise
        finally:
            bar.close()

    def _train(self, stop: StopRequest, bar: tqdm) -> RunResult:
        s = self.settings
        for step in range(self.step + 1, s.steps + 1):
            probe = self.probe(step)  # None except on log steps
            if self.schedule is not None:
                self.schedule.set(step)
            loss_D, loss_G = self.train_step(step, probe)
            self.step = step
            self.watch_finite(step, loss_D, loss_G, probe)
            bar.update()

            signum = self._agreed_signal(stop, step, probe)
            save = self._checkpoint_due(step) or signum is not None
            if (probe or save) and (bad := self._check_finite()) is not None:
                return self._finish("diverged", diverged=bad)  # last.pt stays the last good one
            if probe:
                self.log(step, probe, bar)
            if s.sample_every and step % s.sample_every == 0 and step < s.steps:
                self.log_samples(step)  # the last step's samples come after training
            if s.eval_every and step % s.eval_every == 0 and step < s.steps:
                self.evaluate(step)
            if save and (bad := self.save_checkpoint()) is not None:
                return self._finish("diverged", diverged=bad, in_state=True)
            if signum is not None:
                return self._finish("interrupted", signum=signum)
        trained_until = time.perf_counter()  # the final figure and evaluation are not training
        self.log_samples(self.step, save_png=True)
        self.evaluate(self.step)
        return self._finish("ok", ended_at=trained_until, in_sync=self._ranks_in_sync())

    def train_step(self, step: int, probe: Probe | None) -> tuple[Tensor, Tensor]:
        """One generator step, phase by phase: D (d_steps times, each on fresh batches; D's
        tags describe the last), any lazy regularizer on its interval, then G."""
        losses = {}
        for phase in self.phases:
            if step % phase.every:
                continue
            for repeat in range(1, phase.repeats + 1):
                measured = probe if repeat == phase.repeats else None
                losses[phase.kind] = self.run_phase(phase, measured)
        return losses["D"], losses["G"]

    def run_phase(self, phase: Phase, probe: Probe | None) -> Tensor:
        if phase.kind == "D":
            return self.train_d(next(self.data), self.sample_z(), probe)
        if phase.kind == "G":
            z = self.sample_z()
            real = next(self.data) if self.loss.uses_real_in_g else None
            return self.train_g(z, probe, real)
        return self.train_regularizer(phase, next(self.data), self.sample_z())

    def train_d(self, real: Tensor, z: Tensor, probe: Probe | None = None) -> Tensor:
        """One D update on a real batch and fresh fakes; G is not in the graph. Penalties are
        part of D's objective: one backward."""
        d = self.objective.d_pass(self.G, self.D_train, real, z, self.step + 1, self.D)
        self.opt_D.zero_grad(set_to_none=True)
        d.objective.backward()
        if probe:  # gradients are read after backward, before clipping or the step
            self.diagnostics.on_d_backward(
                probe, d.loss, d.real, d.fake, d.out_real, d.out_fake, d.penalty
            )
        self._update("D", probe)
        return d.loss.detach()

    def train_g(self, z: Tensor, probe: Probe | None = None, real: Tensor | None = None) -> Tensor:
        """One G update through a frozen D (and D's logits on ``real`` for relativistic
        losses)."""
        self._freeze_d(True)
        g = self.objective.g_pass(self.G_train, self.D, z, self.step + 1, real)
        if probe:  # the shadow losses need the graph that backward frees
            self.diagnostics.on_g_forward(probe, g.out_fake, g.out_real)
        self.opt_G.zero_grad(set_to_none=True)
        g.objective.backward()
        self._freeze_d(False)
        if probe:
            self.diagnostics.on_g_backward(probe, g.loss, g.out_fake, g.out_real, g.penalty)
        self._update("G", probe)
        if self.ema is not None:
            self.ema.update(self.step + 1)  # the step in progress
        return g.loss.detach()

    def train_regularizer(self, phase: Phase, real: Tensor, z: Tensor) -> Tensor:
        """A lazy regularizer's own update of its network, every ``phase.every`` steps."""
        network = phase.regularizer.network
        frozen = network == "G"
        self._freeze_d(frozen)
        penalty = self.objective.lazy_penalty(
            phase.regularizer, self.G_train, self.D if frozen else self.D_train, real, z,
            self.step + 1,
        )  # fmt: skip
        (self.opt_G if frozen else self.opt_D).zero_grad(set_to_none=True)
        penalty.backward()
        self._freeze_d(False)
        self._update(network, None)
        return penalty.detach()

    def _update(self, network: str, probe: Probe | None) -> None:
        """The optimizer's step, and D's weight clipping."""
        if probe:
            self.diagnostics.before_step(network)
        (self.opt_D if network == "D" else self.opt_G).step()
        if network == "D" and self.clipper is not None:
            self.clipper()
        if probe:
            self.diagnostics.after_step(probe, network)
            if network == "D":
                self.diagnostics.on_d_step(probe)

    def _agreed_signal(self, stop: StopRequest, step: int, probe: Probe | None) -> int | None:
        """A signal stops every rank at the same step: ranks agree on log and checkpoint steps
        (a collective), alone a process stops after the step in flight."""
        if not self.world.distributed:
            return stop.signal
        if probe is None and not self._checkpoint_due(step):
            return None
        return self.world.all_max(stop.signal or 0) or None

    def _check_finite(self) -> tuple[str, int] | None:
        """Divergence on any rank is divergence on all of them."""
        self.guard.fold()
        self.world.all_min(self.guard.first_bad)
        return self.guard.check()

    def _ranks_in_sync(self) -> bool | None:
        """Under torchrun, whether every rank ends with the same weights (a collective)."""
        if not self.world.distributed:
            return None
        with torch.no_grad():
            params = [*self.G.parameters(), *self.D.parameters()]
            checksum = float(torch.stack([p.double().sum() for p in params]).sum())
        return self.world.all_equal(checksum)

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples and evaluation use: the EMA weights when kept."""
        return self.ema.module if self.ema is not None else self.G

    # ---------------------------------------------------------------- helpers
    def sample_z(self) -> Tensor:
        return torch.randn(self.settings.batch_size, self.G.z_dim, device=self.device)

    def should_log(self, step: int) -> bool:
        return self._regular_log_step(step) or step == self.settings.steps

    def _regular_log_step(self, step: int) -> bool:
        """Step 1 and every log_every-th: the steps every run logs, whatever its length."""
        return step == 1 or step % self.settings.log_every == 0

    def probe(self, step: int) -> Probe | None:
        """What to measure at this step: nothing, scalars, or scalars and histograms (every
        hist_every steps and at the last, so that a short run has them too)."""
        every = self.settings.hist_every
        histograms = every > 0 and (step % every == 0 or step == self.settings.steps)
        if not (histograms or self.should_log(step)):
            return None
        self.diagnostics.start(step)
        return Probe(histograms)

    def watch_finite(self, step: int, loss_D: Tensor, loss_G: Tensor, probe: Probe | None) -> None:
        """Losses every step; on log steps the gradient norms too (a NaN gradient that has not
        yet reached a loss is caught there). Never syncs."""
        self.guard.record(step, [loss_D, loss_G])
        if probe is not None:
            grads = probe.scalars["grad_norm/D/total"], probe.scalars["grad_norm/G/total"]
            self.guard.watch(step, grads)

    def _periodic_checkpoint_due(self, step: int) -> bool:
        every = self.settings.ckpt_every
        return every > 0 and step % every == 0

    def _checkpoint_due(self, step: int) -> bool:
        return step == self.settings.steps or self._periodic_checkpoint_due(step)

    def _freeze_d(self, frozen: bool) -> None:
        """D's weights need no gradient during the G step; only its input does."""
        for p in self.d_params:
            p.requires_grad_(not frozen)

    def log(self, step: int, probe: Probe, bar: tqdm) -> None:
        values = to_host(probe.scalars)  # the one host-device sync of a log step
        last_step, last_time = self._clock
        now = time.perf_counter()
        values["perf/steps_per_sec"] = (step - last_step) / max(now - last_time, 1e-9)
        self._clock = (step, now)
        self.logger.scalars(step, values)
        for tag, tensor in probe.hists.items():
            self.logger.histogram(tag, tensor, step)
        lr_factor = 1.0 if self.schedule is None else self.schedule.factor(step)
        regular = self._regular_log_step(step)
        for message in self.alarm.update(step, values, record=regular, lr_factor=lr_factor):
            log.warning(message)
            self.logger.text("alerts", message, step)
        self.last_logged = values
        for flow in self.flows.values():
            flow.add(step, values)
        bar.set_postfix(
            loss_D=f"{values['loss/D']:.4g}", loss_G=f"{values['loss/G']:.4g}", refresh=False
        )

    def log_samples(self, step: int, save_png: bool = False) -> None:
        """``samples``: for 2-D data a figure with D's contour, for images a grid of G's output
        on a fixed batch of z, so that frames are comparable over time; ``gradient_flow/G`` and
        ``/D``: the per-layer gradient norms logged so far as heatmaps."""
        if not self.world.is_main:
            return
        shape = getattr(self.data, "shape", ())
        if shape == (2,):
            fig = toy_samples_figure(self.sampler, self.D, self.data, self.loss, step)
            rgb = figure_to_rgb(fig)  # drawn once, for TensorBoard and samples.png
        elif len(shape) == 3:
            rgb = image_grid(generate(self.sampler, 64, seed=self.settings.seed))
        else:
            return
        self.logger.image("samples", rgb, step)
        flows = {
            net: figure_to_rgb(gradient_flow_figure(flow))
            for net, flow in self.flows.items()
            if flow.steps
        }
        for network, picture in flows.items():
            self.logger.image(f"gradient_flow/{network}", picture, step)
        if save_png:
            Image.fromarray(rgb).save(self.run_dir / "samples.png")
        if save_png and flows:  # G above D; the figures share their width
            Image.fromarray(np.concatenate(list(flows.values()))).save(
                self.run_dir / "gradient_flow.png"
            )

    def log_real_samples(self) -> None:
        """A grid of real images, once (not again when resuming), for comparison."""
        if self.world.is_main and self.step == 0 and len(getattr(self.data, "shape", ())) == 3:
            rng = torch.Generator().manual_seed(self.settings.seed)
            self.logger.image("real", image_grid(self.data.sample(64, generator=rng)), self.step)

    def evaluate(self, step: int) -> None:
        """Evaluation metrics → ``metrics/<name>`` and metrics.json (rewritten, status running)."""
        if self.evaluator is None:
            return
        self.last_metrics = self.evaluator(self.sampler)
        defined = {k: v for k, v in self.last_metrics.items() if v is not None}
        self.logger.scalars(step, {f"metrics/{k}": v for k, v in defined.items()})
        log.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in defined.items()))
        self._write_metrics(self._metrics("running"))

    def state_dict(self) -> dict[str, object]:
        """Everything needed to continue exactly: networks, optimizers (and the hyperparameters
        the config gave them), step, every RNG, the data stream's position and the alarm."""
        state: dict[str, object] = {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "optim_config": self._configured,
            "step": self.step,
            "rng": rng_state(),
            "alarm": self.alarm.state_dict(),
            "kind": self._kind(),
            "data_shape": list(self.G.data_shape),  # what ganopt-sample rebuilds G for
        }
        if hasattr(self.data, "state_dict"):
            state["data"] = self.data.state_dict()
        if self.ema is not None:
            state["G_ema"] = self.ema.module.state_dict()
        return state

    #: what a checkpoint must hold for load_state_dict
    REQUIRED = ("G", "D", "opt_G", "opt_D", "step", "rng", "alarm", "kind")

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Continue from a checkpoint. Raises ValueError, naming what is wrong, for a
        checkpoint that lacks a part or was written by a run whose loss, optimizers or network
        shapes differ from this one's. Optimizer settings the config changed since (optim.g.lr
        ...) are applied, and said so."""
        if missing := [key for key in self.REQUIRED if key not in state]:
            raise ValueError(f"the checkpoint has no {', '.join(missing)}")
        kind = self._kind()
        saved_kind = state["kind"]
        if not isinstance(saved_kind, dict) or set(saved_kind) - set(kind):
            raise ValueError(f"the checkpoint's kind {saved_kind!r} is not one ganopt writes")
        for key, saved in saved_kind.items():
            if saved != kind[key]:
                raise ValueError(f"the checkpoint's {key} is {saved}, this run's is {kind[key]}")
        modules = [("G", self.G), ("D", self.D)]
        if self.ema is not None:
            if "G_ema" not in state:
                raise ValueError("the checkpoint has no EMA weights, and this run keeps them")
            modules.append(("G_ema", self.ema.module))
        for name, module in modules:
            _load_part(name, lambda m=module, n=name: m.load_state_dict(state[n]))
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            _load_part(name, lambda o=opt, n=name: o.load_state_dict(state[n]))
        self._apply_configured(state.get("optim_config"))
        self.step = _load_part("step", lambda: _step(state["step"]))
        _load_part("rng", lambda: set_rng_state(state["rng"]))
        _load_part("alarm", lambda: self.alarm.load_state_dict(state["alarm"]))
        if "data" in state:
            _load_part("data", lambda: self.data.load_state_dict(state["data"]))

    def _apply_configured(self, saved: object) -> None:
        """The config's optimizer settings win over the checkpoint's: a resume with
        ``optim.g.lr=0.01`` trains at 0.01, as the recorded config says (the schedule, if any,
        scales it from the next step)."""
        changes = []
        for name, opt in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            for i, group in enumerate(opt.param_groups):
                configured = self._configured[name][i]
                before = saved[name][i] if isinstance(saved, dict) else {}
                changes += [
                    f"{name} {key} {before[key]} -> {value}"
                    for key, value in configured.items()
                    if key in before and _plain(before[key]) != _plain(value)
                ]
                group.update(configured)
        if changes:
            log.warning("resume applies the config's changed settings: %s", "; ".join(changes))

    def _kind(self) -> dict[str, str]:
        return {
            "loss": self.loss.name,
            "opt_G": type(self.opt_G).__name__,
            "opt_D": type(self.opt_D).__name__,
        }

    def save_checkpoint(self) -> tuple[str, int] | None:
        """Save everything to continue from, unless a weight or an optimizer's state is not
        finite: then nothing is written, and (network, step) is returned. Weights are the same
        on every rank, so every rank reaches the same answer."""
        state = self.state_dict()
        bad = non_finite_network(state)
        if bad is not None:
            return bad, self.step
        if self.world.is_main:
            periodic = self._periodic_checkpoint_due(self.step)
            with signals_held():  # a second Ctrl-C lands after the checkpoint's record
                self.checkpoints.save(state, self.step, periodic=periodic)
                self.saved_step = self.step
                self._write_metrics(self._metrics("running"))  # never behind the checkpoint
        return None

    def _metrics(self, status: str, ended_at: float | None = None) -> dict[str, object]:
        start, started_at = self._fit_start
        elapsed = (ended_at or time.perf_counter()) - started_at
        metrics: dict[str, object] = {
            "status": status,
            "step": self.step,
            "checkpoint_step": self.saved_step,
            "steps_per_sec": (self.step - start) / elapsed if elapsed > 0 else None,
        }
        for key, tag in FINAL_SCALARS.items():
            value = self.last_logged.get(tag)
            metrics[key] = value if value is None or math.isfinite(value) else None
        metrics |= self.alarm.metrics()
        if self.evaluator is not None:
            metrics |= self.evaluator.info | self.last_metrics
        return metrics

    def _write_metrics(self, metrics: dict[str, object]) -> None:
        if not self.world.is_main:
            return
        text = json.dumps(metrics, indent=2).encode()
        write_atomic(self.run_dir / "metrics.json", lambda f: f.write(text))

    def _finish(
        self,
        status: str,
        diverged: tuple[str, int] | None = None,
        signum: int | None = None,
        ended_at: float | None = None,
        in_sync: bool | None = None,
        in_state: bool = False,
        aborted: bool = False,
        error: str | None = None,
    ) -> RunResult:
        """Write metrics.json and say how the run ended, in one line."""
        metrics = self._metrics(status, ended_at)
        kept = f"step {self.saved_step}" if self.saved_step is not None else "none yet"
        if in_sync is not None:
            metrics |= {"world_size": self.world.size, "ranks_in_sync": in_sync}
        if diverged is not None:
            network, at = diverged
            metrics |= {"diverged_network": network, "diverged_step": at}
            what = "weights or optimizer state" if in_state else "loss or gradient"
            message = (
                f"diverged: non-finite {network} {what} at step {at}; training stopped, the last "
                f"good checkpoint is kept ({kept})"
            )
            log.warning(message)
            self.logger.text("alerts", message, at)
        if error is not None:
            metrics["error"] = error
            log.error("failed at step %d: %s (last checkpoint: %s)", self.step, error, kept)
        elif aborted:
            log.warning(
                "aborted at step %d by a second Ctrl-C; last checkpoint: %s", self.step, kept
            )
        elif signum is not None:
            log.warning("interrupted at step %d; checkpoint saved", self.step)
        try:
            self._write_metrics(metrics)
        except WriteError as e:
            log.error("%s", e)
        return RunResult(status, self.step, metrics, signum)
