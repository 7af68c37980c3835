"""The training loop, read top to bottom like Algorithm 1 of the WGAN paper: for each generator
step, its phases (D d_steps times, any lazy regularizer, G), then log, sample, checkpoint.
Everything it needs arrives built (ganopt/setup/); the objective computes the losses, the
recorder writes what the run shows, the checkpointer saves what a checkpoint holds."""

from __future__ import annotations

import logging
import signal
import time

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ganopt.checkpoint import Checkpointer
from ganopt.compiled import Passes, StepPasses
from ganopt.components import Components
from ganopt.diagnostics import NonFiniteGuard, Probe
from ganopt.diagnostics.report import collecting
from ganopt.objective import Phase, trainable
from ganopt.optimizers import Extragradient
from ganopt.recorder import RunRecorder, RunResult, failure_line
from ganopt.state import RunState
from ganopt.stopping import StopRequest, signals_held
from ganopt.stopwatch import Stopwatch
from ganopt.tags import GRAD_NORM_TOTAL
from ganopt.updates import Updates, zero_grad

__all__ = ["RunResult", "Trainer"]

log = logging.getLogger("ganopt.trainer")


class Trainer:
    """Trains G and D, each with its own optimizer, and stops cleanly on a signal or
    divergence."""

    def __init__(
        self, parts: Components, *, recorder: RunRecorder, checkpoints: Checkpointer
    ) -> None:
        self.G, self.D, self.objective, self.data = parts.G, parts.D, parts.objective, parts.data
        self.loss, self.ema, self.world = parts.loss, parts.ema, parts.world
        self.opt_G, self.opt_D, self.schedule = parts.opt_G, parts.opt_D, parts.schedule
        self.settings, self.diagnostics = parts.settings, parts.diagnostics
        self.recorder, self.checkpoints = recorder, checkpoints
        shown = {f"flow_{network}": flow for network, flow in recorder.flows.items()}
        shown["evaluations"] = recorder.evaluations
        self.state = RunState(parts.stateful() | shown, parts.identity(), parts.G.data_shape)
        self.guard = NonFiniteGuard(["D", "G"], parts.device)
        self.updates = Updates(parts)
        self.phases = self.objective.phases(self.settings.d_steps, self.settings.update)
        self.extragradient = isinstance(parts.opt_D, Extragradient)
        # Under torchrun each network trains through its own DistributedDataParallel wrapper;
        # every other forward (no-grad, frozen D, diagnostics, penalties) uses the plain module.
        self.device = next(self.G.parameters()).device
        self.G_train, self.D_train = (self.world.wrap(n, self.device) for n in (self.G, self.D))
        self.d_params, self.g_params = trainable(self.D), trainable(self.G)
        # the passes of a step: eager on log steps, compiled between them (trainer.compile)
        eager = Passes(self.G_train, self.D_train, self.G, self.D)
        self.steps = StepPasses(eager, self.settings.compile, self.settings.cuda_graphs)
        self.passes = eager
        self.stopwatch = Stopwatch()  # off: scripts/bench.py --breakdown turns it on

    def time_parts(self, stopwatch: Stopwatch) -> None:
        """Time the steps and what the recorder and the checkpointer do with ``stopwatch``."""
        self.stopwatch = self.recorder.stopwatch = self.checkpoints.stopwatch = stopwatch

    @property
    def step(self) -> int:
        """Completed generator updates."""
        return self.state.step

    # ---------------------------------------------------------------- the algorithm
    def fit(self) -> RunResult:
        """Train until ``settings.steps`` generator updates, a signal, or divergence."""
        bar = self.recorder.progress_bar(self.step)
        try:
            if self.steps.compiled is not None:  # before the clock of steps_per_sec starts
                self.recorder.compile_seconds = self.steps.warm_up(
                    self._two_steps, self.state, lambda: self._freeze_d(False)
                )
            self.recorder.start(self.step)
            self.checkpoints.resumed_at(self.step)
            self.recorder.log_real_samples(self.step)
            with StopRequest() as stop:
                return self._train(stop, bar)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, without another checkpoint
            return self._finish("interrupted", signum=signal.SIGINT, aborted=True)
        except Exception as e:  # metrics.json says how the run ended, whatever ended it
            line = failure_line(e, self.step + 1)
            result = self._finish("failed", error=line or f"{type(e).__name__}: {e}")
            if line is None:
                raise
            return result
        finally:
            bar.close()

    def _train(self, stop: StopRequest, bar: tqdm) -> RunResult:
        record = self.recorder
        for step in range(self.step + 1, self.settings.steps + 1):
            probe = self.probe(step)  # None except on log steps
            if self.schedule is not None:
                self.schedule.set(step)
            with collecting(probe), self.stopwatch("log steps" if probe else "steps"):
                loss_D, loss_G = self.train_step(step, probe)  # reports come on log steps only
            self.state.step = step
            self.guard.record(step, [loss_D, loss_G])  # on the device: no sync
            if probe:  # a NaN gradient that has not yet reached a loss is caught here
                self.guard.watch(step, [probe.scalars[GRAD_NORM_TOTAL[n]] for n in "DG"])
            bar.update()

            # every rank stops at the same step: they agree on log and checkpoint steps
            due = self.checkpoints.due(step)
            signum = self.world.agreed_signal(stop.signal, probe is not None or due)
            save = due or signum is not None
            if (probe or save) and (bad := self.guard.check(self.world.all_min)) is not None:
                return self._finish("diverged", diverged=bad)  # last.pt stays the last good one
            if probe:
                record.log(step, probe, bar)
            record.after_step(step)
            if save and (network := self._save(step)):
                return self._finish("diverged", diverged=(network, step), in_state=True)
            record.draw(step)
            if signum is not None:
                return self._finish("interrupted", signum=signum)
        trained_until = time.perf_counter()  # the final figure and evaluation are not training
        with self.stopwatch.paused():
            record.final(self.step)
        in_sync = self.world.in_sync([self.G, self.D])
        return self._finish("ok", ended_at=trained_until, in_sync=in_sync)

    def _save(self, step: int) -> str | None:
        """The checkpoint of ``step`` and the metrics.json that records it, which a second
        Ctrl-C never separates; a network whose state is not finite instead."""
        self.recorder.before_checkpoint(step)
        with signals_held():
            network = self.checkpoints.save(self.state.state_dict(), step)
            if network is None:
                self.recorder.write_progress(step)
        return network

    def train_step(self, step: int, probe: Probe | None) -> tuple[Tensor, Tensor]:
        """One generator step, phase by phase: D (d_steps times, each on fresh batches; D's
        tags describe the last), any lazy regularizer on its interval, then G (or D and G at
        once: trainer.update=simultaneous). Extragradient runs the phases twice: a look-ahead
        from the current point, then the step from it with the look-ahead's gradients."""
        self.passes = self.steps.for_step(logged=probe is not None)
        if self.extragradient:
            for network in "DG" if probe else "":  # the update counts from before the look-ahead
                self.diagnostics.before_step(network)
            self.run_phases(step, None, extrapolate=True)
        losses = self.run_phases(step, probe)
        return losses["D"], losses["G"]

    def run_phases(self, step: int, probe: Probe | None, extrapolate: bool = False) -> dict:
        losses = {}
        for phase in self.phases:
            if step % phase.every:
                continue
            for repeat in range(1, phase.repeats + 1):
                measured = probe if phase.measured and repeat == phase.repeats else None
                losses |= self.run_phase(phase, measured, extrapolate)
        return losses

    def run_phase(self, phase: Phase, probe: Probe | None, extrapolate: bool) -> dict:
        if phase.kind == "reg":
            real, z = next(self.data), self.sample_z()
            return {"reg": self.train_regularizer(phase, real, z, extrapolate)}
        losses = {}
        if "D" in phase.kind:
            losses["D"] = self.d_gradients(next(self.data), self.sample_z(), probe)
        if "G" in phase.kind:
            z = self.sample_z()
            real = next(self.data) if self.objective.g_needs_real else None
            losses["G"] = self.g_gradients(z, probe, real)
        for network in phase.kind:  # both gradients are taken before either step
            self.updates.apply(network, probe, extrapolate)
        if "G" in phase.kind and not extrapolate:
            self.updates.after_generator_step(self.step + 1)  # the step in progress
        return losses

    def d_gradients(self, real: Tensor, z: Tensor, probe: Probe | None = None) -> Tensor:
        """D's gradients on a real batch and fresh fakes; G is not in the graph. Penalties are
        part of D's objective: one backward."""
        passes = self.passes
        d = self.objective.d_pass(passes.G, passes.D_train, real, z, self.step + 1, self.D)
        zero_grad(self.d_params)
        d.objective.backward(inputs=self.d_params)
        if probe:  # gradients are read after backward, before clipping or the step
            self.diagnostics.on_d_backward(
                probe, d.loss, d.real, d.fake, d.out_real, d.out_fake, d.penalty
            )
        return d.loss.detach()

    def g_gradients(
        self, z: Tensor, probe: Probe | None = None, real: Tensor | None = None
    ) -> Tensor:
        """G's gradients through a frozen D (consensus's field needs D's weights in the
        graph: there only G's gradients are kept)."""
        self._freeze_d(not self.objective.consensus)
        g = self.objective.g_pass(self.passes.G_train, self.passes.D, z, self.step + 1, real)
        if probe:  # the shadow losses need the graph that backward frees
            self.diagnostics.on_g_forward(probe, z, g.fake, g.out_fake, g.out_real)
        zero_grad(self.g_params)
        g.objective.backward(inputs=self.g_params)
        self._freeze_d(False)
        if probe:
            self.diagnostics.on_g_backward(probe, g.loss, g.out_fake, g.out_real, g.penalty)
        return g.loss.detach()

    def train_regularizer(
        self, phase: Phase, real: Tensor, z: Tensor, extrapolate: bool = False
    ) -> Tensor:
        """A lazy regularizer's own update of its network, every ``phase.every`` steps."""
        network = phase.regularizer.network
        on_g = network == "G"
        self._freeze_d(on_g)
        D = self.D if on_g else self.D_train
        penalty = self.objective.lazy_penalty(
            phase.regularizer, self.G_train, D, real, z, self.step + 1
        )
        zero_grad(self.g_params if on_g else self.d_params)
        penalty.backward()
        self._freeze_d(False)
        self.updates.apply(network, None, extrapolate)
        return penalty.detach()

    def _two_steps(self) -> None:
        for _ in range(2):  # D frozen and not, and CUDA graphs recorded after a warm-up call
            self.train_step(self.step + 1, None)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _freeze_d(self, frozen: bool) -> None:
        """D's weights need no gradient during the G step; only its input does."""
        for p in self.d_params:
            p.requires_grad_(not frozen)

    def sample_z(self) -> Tensor:
        return torch.randn(self.settings.batch_size, self.G.z_dim, device=self.device)

    def probe(self, step: int) -> Probe | None:
        """What to measure at this step: nothing, scalars, or scalars and histograms."""
        histograms = self.recorder.histograms_due(step)
        if not (histograms or self.recorder.log_due(step)):
            return None
        self.diagnostics.start(step)
        return Probe(histograms)

    def _finish(self, status: str, **how: object) -> RunResult:
        return self.recorder.finish(status, self.step, **how)
