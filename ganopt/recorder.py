"""What a run shows and leaves behind, apart from its checkpoints: the log-step schedule,
TensorBoard scalars, histograms and alerts, the sample and gradient-flow figures, evaluation,
and metrics.json with how the run ended (docs/running.md, "The run directory")."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganopt.background import BackgroundTask
from ganopt.checkpoint import Checkpointer
from ganopt.components import Components
from ganopt.diagnostics import Probe, to_host
from ganopt.diagnostics.flow import GradientFlow
from ganopt.diagnostics.game import GameMeasurement
from ganopt.evaluation.background import BackgroundEvaluation, Scores
from ganopt.evaluation.history import EvaluationHistory, read_history
from ganopt.evidence import first_success, meets
from ganopt.figures import Figures, FigureWriter
from ganopt.logger import TensorBoardLogger
from ganopt.rundir import WriteError, write_atomic
from ganopt.stopwatch import Stopwatch, timed
from ganopt.tags import (
    FINAL_SCALARS,
    GAME_TAGS,
    GRAD_NORM_LOG10,
    GRAD_NORM_TOTAL,
    LOSS_D,
    LOSS_G,
    METRICS,
    STEPS_PER_SEC,
)

log = logging.getLogger("ganopt.trainer")

#: what an allocation that does not fit raises (torch.OutOfMemoryError is new in torch 2.5)
OUT_OF_MEMORY = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


#: the early steps with histograms below hist_every: 1 and 3 times each power of ten from
#: 100 (each costs a log step's measurements and a write of every layer's histogram)
EARLY_HISTOGRAMS = frozenset(m * 10**e for e in range(2, 7) for m in (1, 3))


@dataclass
class RunResult:
    """How a run ended: ok, diverged, interrupted or failed (docs/reliability.md, "How a run
    ends")."""

    status: str
    step: int
    metrics: dict[str, object] = field(default_factory=dict)
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 128 + (self.signal or signal.SIGINT)
        return 1 if self.status == "failed" else 0


def failure_line(error: Exception, step: int) -> str | None:
    """One line for a failure the run can name (a full disk, memory), else None: the error
    is a bug to show whole."""
    if isinstance(error, WriteError):
        return str(error)
    text = str(error)
    memory = isinstance(error, (MemoryError, *OUT_OF_MEMORY)) or (
        isinstance(error, RuntimeError)
        and ("out of memory" in text or "can't allocate memory" in text)
    )
    if not memory:
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"out of memory during step {step} ({first[:160]}); lower trainer.batch_size"


def peak_memory_mb(device: torch.device) -> float | None:
    """The most memory this process has held: CUDA's allocator peak on a GPU, else the peak
    resident set size (what the kernel counts, Python and torch included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / 1024 if sys.platform != "darwin" else kilobytes / 2**20  # macOS: bytes


class RunRecorder:
    """Decides which steps log, sample and evaluate, and writes what they show: TensorBoard,
    the figures, evaluation, the game's spectrum, metrics.json and how the run ended."""

    def __init__(
        self,
        parts: Components,
        *,
        run_dir: Path,
        logger: TensorBoardLogger,
        checkpoints: Checkpointer,
    ) -> None:
        self.run_dir, self.logger, self.checkpoints = Path(run_dir), logger, checkpoints
        self.settings, self.alarm, self.world = parts.settings, parts.alarm, parts.world
        self.figures = Figures(lambda: parts.sampler, parts.D, parts.loss, parts.data)
        self.evaluator, self.schedule, self.device = parts.evaluator, parts.schedule, parts.device
        self.game = parts.game  # built on the main rank only
        self.beside = parts.diagnostics.beside  # the log steps' measurements beside training
        self._unwritten: dict[int, dict[str, float]] = {}  # log steps' scalars waiting for them
        if self.game is not None:
            logger.expected_tags.update(GAME_TAGS)
        self.flows = {network: GradientFlow(network) for network in ("G", "D")}  # checkpointed
        self.last_logged: dict[str, float] = {}
        self.last_metrics: dict[str, float | None] = {}  # the latest evaluation
        self.evaluations = EvaluationHistory()  # every evaluation: checkpointed
        self._evaluating: BackgroundEvaluation | None = None  # one at a time, beside training
        self._evaluates_beside = parts.beside  # a CPU run with a core to spare
        self._gaming: BackgroundTask[GameMeasurement] | None = None  # the game, beside training
        self._in_tensorboard: int | None = None  # a resumed evaluation TensorBoard holds
        self._clock = self._fit_start = (0, time.perf_counter())  # (step, time): last log, fit
        self.compile_seconds: float | None = None
        self.stopwatch = Stopwatch()  # off: scripts/bench.py --breakdown times the parts
        #: the figures and histograms, drawn and written off the training thread where a core
        #: is spare; where the run's threads take every CPU, on it: beside a run on every core
        #: each figure stalled all of its threads (docs/performance.md)
        self.figure_writer = FigureWriter(
            self.figures, logger, self.run_dir, self.settings.seed, background=parts.beside
        )
        #: whether this rank draws figures: the main one, unless trainer.figures=false
        self.draws = self.world.is_main and self.settings.figures

    def progress_bar(self, step: int) -> tqdm:
        """The run directory made, and a progress bar on stderr from ``step`` (trainer.progress)."""
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        return tqdm(
            total=self.settings.steps,
            initial=step,
            unit="step",
            disable=not self.settings.progress,
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def start(self, step: int) -> None:
        """The clock of steps_per_sec starts. A run resumed from a checkpoint whose step was an
        evaluation's evaluates it again: the checkpoint was written while that evaluation ran
        beside training, and does not hold it (:meth:`before_checkpoint`); the weights are the
        same, and so are the numbers."""
        self._fit_start = self._clock = (step, time.perf_counter())
        evaluated = any(row["step"] == step for row in self.evaluations.rows)
        if 0 < step < self.settings.steps and self._evaluation_due(step) and not evaluated:
            if self.world.is_main and step in self._steps_in_evaluations_csv():
                self._in_tensorboard = step  # shown before the run stopped: not twice
            self.evaluate(step)

    def _steps_in_evaluations_csv(self) -> set[int]:
        """The steps the run directory's evaluations.csv holds (the run that wrote it showed
        each in TensorBoard first); none where it cannot be read."""
        try:
            return {int(row["step"]) for row in read_history(self.run_dir)}
        except ValueError:
            return set()

    def start_drawing(self) -> None:
        """Start the drawing process now, where this rank draws figures, rather than at the
        first figure: it loads matplotlib while the run starts and trains, so that even a
        short run's last figures are drawn there at once. For train.py's runs: a spawned
        process imports the program's main module again, which train.py guards and a script
        that runs the Trainer in its body may not."""
        if self.draws:
            self.figure_writer.drawing.start()

    # ---------------------------------------------------------------- the schedule
    def log_due(self, step: int) -> bool:
        return self._regular_log_step(step) or step == self.settings.steps

    def _regular_log_step(self, step: int) -> bool:
        """Step 1 and every log_every-th: the steps every run logs, whatever its length."""
        return step == 1 or step % self.settings.log_every == 0

    def histograms_due(self, step: int) -> bool:
        """Every hist_every steps and at the last, and more often early (steps 100, 300,
        1000, ... below hist_every), where a collapse often happens."""
        every = self.settings.hist_every
        early = step < every and step in EARLY_HISTOGRAMS
        return every > 0 and (early or step % every == 0 or step == self.settings.steps)

    def after_step(self, step: int) -> None:
        """An evaluation done beside training shown; evaluation started and the game's
        spectrum measured on their intervals (the game before a checkpoint of the same step);
        the last step's come after training."""
        s = self.settings
        self.write_measured_beside()
        if self._evaluating is not None and self._evaluating.done():
            self.show_evaluation(step)
        if self._gaming is not None and self._gaming.done():
            self.show_game()
        if self._evaluation_due(step) and step < s.steps:
            self.evaluate(step)
        if self.game is not None and self.game.due(step) and step < s.steps:
            self.show_game()  # one at a time, shown in order
            self.measure_game(step, beside_training=True)

    def _evaluation_due(self, step: int) -> bool:
        return bool(self.settings.eval_every) and step % self.settings.eval_every == 0

    def before_checkpoint(self, step: int) -> None:
        """Every log step's measurements written, and the evaluations of earlier steps shown
        (waiting for those still running), so that a checkpoint holds every one of them; that
        of ``step`` itself runs on, and a resume from this checkpoint evaluates it again
        (:meth:`start`)."""
        if self._evaluating is not None and self._evaluating.step < step:
            self.show_evaluation(step)
        self.show_game()
        self.write_measured_beside(wait=True)

    def draw(self, step: int) -> None:
        """The sample figures on their interval, after a checkpoint of the same step, which so
        does not wait for them to be drawn; the last step's come after training."""
        s = self.settings
        if s.sample_every and step % s.sample_every == 0 and step < s.steps:
            self.log_samples(step)

    def final(self, step: int) -> None:
        """What a finished run shows last: the samples (and their PNG), evaluation, the game.
        The figures are drawn beside the other two where the drawing process has them; on the
        worker thread they come last, as there they would hold the interpreter between the
        evaluation's every torch call and make both slower. The game is measured beside the
        evaluation where it would be beside training."""
        drawing = self.figure_writer.drawing
        drawing.training_over()
        beside = drawing.elsewhere
        if beside:
            self.log_samples(step, save_png=True)
        self.show_game()
        self.measure_game(step, beside_training=True)
        self.evaluate(step, beside_training=False)
        self.show_game()
        if not beside:
            self.log_samples(step, save_png=True)

    # ---------------------------------------------------------------- TensorBoard
    @timed("log steps' writes (scalars, histograms, alarms)")
    def log(self, step: int, probe: Probe, bar: tqdm) -> None:
        """A log step's scalars, alarms and gradient flow; a step measured for its histograms
        alone (an early one) writes those only."""
        if probe.hists:
            self.figure_writer.histograms(step, probe.hists)
        if not self.log_due(step):
            return
        values = to_host(probe.scalars)  # the one host-device sync of a log step
        last_step, last_time = self._clock
        now = time.perf_counter()
        values[STEPS_PER_SEC] = (step - last_step) / max(now - last_time, 1e-9)
        for network, tag in GRAD_NORM_TOTAL.items():  # orders of magnitude, for the chart
            if values.get(tag, 0.0) > 0:
                values[GRAD_NORM_LOG10[network]] = math.log10(values[tag])
        self._clock = (step, now)
        if self.beside is not None and self.beside.measures(step):
            self._unwritten[step] = dict(values)  # written with what is measured beside
        else:
            self.logger.scalars(step, values)
        lr_factor = 1.0 if self.schedule is None else self.schedule.factor(step)
        regular = self._regular_log_step(step)
        for message in self.alarm.update(step, values, record=regular, lr_factor=lr_factor):
            log.warning(message)
            self.logger.text("alerts", message, step)
        self.last_logged = values
        for flow in self.flows.values() if regular else ():  # a split run's figure is the same
            flow.add(step, values)
        bar.set_postfix(
            loss_D=f"{values[LOSS_D]:.4g}", loss_G=f"{values[LOSS_G]:.4g}", refresh=False
        )

    def write_measured_beside(self, wait: bool = False) -> None:
        """The scalars of each log step whose measurements beside training are done
        (ganopt/diagnostics/beside.py; every one: ``wait``), written with them as one event;
        what a measurement raised is raised here."""
        if self.beside is None:
            return
        for step, measured in self.beside.ready(wait):
            values = self._unwritten.pop(step, None)
            if values is None:  # a step measured for its histograms alone writes no scalars
                continue
            with self.stopwatch("log steps' scalars written once measured beside training"):
                self.logger.scalars(step, values | to_host(measured))

    @timed("sample and gradient-flow figures (trainer.sample_every)")
    def log_samples(self, step: int, save_png: bool = False) -> None:
        """``samples``: for 2-D data a figure with D's contour, for images a grid of G's output
        on a fixed batch of z, so that frames are comparable over time; ``gradient_flow/G`` and
        ``/D``: the per-layer gradient norms logged so far as heatmaps. What they show is
        computed here; the worker draws and writes it (ganopt/drawing.py). None at all under
        trainer.figures=false."""
        if not self.draws:
            return
        self.figure_writer.samples(step, list(self.flows.values()), save_png)

    def log_real_samples(self, step: int) -> None:
        """A grid of real images, once (not again when resuming), for comparison."""
        if self.draws and step == 0:
            self.figure_writer.real(step)

    def evaluate(self, step: int, beside_training: bool = True) -> None:
        """Evaluation of the sampler's weights of ``step``: on a CPU run with a core to spare,
        on a copy, on a thread of its own while training goes on (ganopt/evaluation/
        background.py), shown once done, at the latest at the next evaluation, a checkpoint or
        the end; else (and the final one) here, now."""
        if self.evaluator is None:
            return
        self.show_evaluation(step)  # one at a time, shown in order
        with self.stopwatch("evaluation (trainer.eval_every)"):
            if beside_training and self._evaluates_beside:
                self._evaluating = BackgroundEvaluation(
                    step, self.evaluator, self.figures.sampler()
                )
            else:
                self._show(step, self.evaluator(self.figures.sampler()), step)

    def show_evaluation(self, now: int) -> None:
        """The evaluation running beside training, if any, shown at step ``now`` of the run
        (waiting until it is done); what it raised is raised here."""
        evaluating = self._evaluating
        if evaluating is None:
            return
        with self.stopwatch("evaluation (trainer.eval_every)"):
            evaluating.wait()  # a second Ctrl-C here leaves it for finish() to wait for
            self._evaluating = None
            self._show(evaluating.step, evaluating.result(), now)

    def _show(self, step: int, scores: Scores, now: int) -> None:
        """The evaluation of ``step`` → ``metrics/<name>``, evaluations.csv and metrics.json
        (rewritten at step ``now`` of the run, status running)."""
        self.last_metrics = scores
        self.evaluations.add(step, scores)
        defined = {k: v for k, v in scores.items() if v is not None}
        if (success := self._success().get("success")) is not None:
            defined["success"] = success
        if step != self._in_tensorboard:
            self.logger.scalars(step, {f"{METRICS}/{k}": v for k, v in defined.items()})
        log.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in defined.items()))
        self.evaluations.write(self.run_dir)  # the evaluator lives on the main rank only
        self.write_metrics(self.metrics("running", now))

    @timed("the game's spectrum (diagnostics.game_every)")
    def measure_game(self, step: int, beside_training: bool = False) -> None:
        """``game/*``: the spectrum of the game at this step, and its picture (trainer.figures):
        on copies, on a thread of its own, where a core is spare and the game's passes draw no
        random number; else here, now."""
        if self.game is None:
            return
        try:
            if beside_training and self._evaluates_beside and not self.game.draws_at_random(step):
                self._gaming = BackgroundTask(step, "game", self.game.beside(step))
                return
            measured = self.game.measure(step)
        except RuntimeError as e:
            self._game_failed(e)
            return
        self._show_game(step, measured)

    def show_game(self) -> None:
        """The game measured beside training, if any, shown (waiting until it is done)."""
        gaming = self._gaming
        if gaming is None:
            return
        with self.stopwatch("the game's spectrum (diagnostics.game_every)"):
            gaming.wait()  # a second Ctrl-C here leaves it for finish() to wait for
            self._gaming = None
            try:
                measured = gaming.result()
            except RuntimeError as e:
                self._game_failed(e)
                return
            self._show_game(gaming.step, measured)

    def _game_failed(self, error: RuntimeError) -> None:
        """An operation with no double backward: the game is not measured again."""
        log.warning("game diagnostics turned off: %s", str(error).strip().splitlines()[0])
        self.game = None

    def _show_game(self, step: int, measured: GameMeasurement) -> None:
        self.logger.scalars(step, measured.scalars)
        if self.draws:
            self.figure_writer.spectrum(measured.eigenvalues, step)

    # ---------------------------------------------------------------- metrics.json
    def metrics(self, status: str, step: int, ended_at: float | None = None) -> dict[str, object]:
        start, started_at = self._fit_start
        elapsed = (ended_at or time.perf_counter()) - started_at
        metrics: dict[str, object] = {
            "status": status,
            "step": step,
            "checkpoint_step": self.checkpoints.saved_step,
            "steps_per_sec": (step - start) / elapsed if elapsed > 0 else None,
            "peak_memory_mb": peak_memory_mb(self.device),
        }
        if self.compile_seconds is not None:  # trainer.compile: its warm-up, not in steps/s
            metrics["compile_seconds"] = self.compile_seconds
        for key, tag in FINAL_SCALARS.items():
            value = self.last_logged.get(tag)
            metrics[key] = value if value is None or math.isfinite(value) else None
        metrics |= self.alarm.metrics()
        if self.evaluator is not None:
            metrics |= self.evaluator.info | self.last_metrics | self._success()
        return metrics

    def _success(self) -> dict[str, float | None]:
        """``success`` (1 or 0) at the latest evaluation and ``success_step``, the first
        evaluation that met the criterion (docs/sweeps.md), where the evaluator has one."""
        criterion, info = self.evaluator.success, self.evaluator.info
        if not criterion or not self.evaluations.rows:
            return {}
        latest = self.evaluations.rows[-1]
        met = meets(criterion, info | {k: v for k, v in latest.items() if v is not None})
        rows = [{k: v for k, v in r.items() if v is not None} for r in self.evaluations.rows]
        return {"success": float(met), "success_step": first_success(criterion, rows, info)}

    def write_progress(self, step: int) -> None:
        """metrics.json of a run in progress, never behind its newest checkpoint, nor its figures
        (the worker's are written first)."""
        self.figure_writer.drawing.wait()
        self.write_metrics(self.metrics("running", step))

    def write_metrics(self, metrics: dict[str, object]) -> None:
        if not self.world.is_main:
            return
        text = json.dumps(metrics, indent=2).encode()
        write_atomic(self.run_dir / "metrics.json", lambda f: f.write(text))

    def finish(
        self,
        status: str,
        step: int,
        *,
        diverged: tuple[str, int] | None = None,
        signum: int | None = None,
        ended_at: float | None = None,
        in_sync: bool | None = None,
        in_state: bool = False,
        aborted: bool = False,
        error: str | None = None,
    ) -> RunResult:
        """Write metrics.json, once the work still running beside training (log-step
        measurements, an evaluation, the game) is shown (not after a second Ctrl-C) and every
        figure, the game's spectrum included, is written; and say how the run ended, in one
        line."""
        try:
            if not aborted:
                self.write_measured_beside(wait=True)
                self.show_evaluation(step)
                self.show_game()
        except Exception as e:  # the run has ended otherwise: say so, and end it as it did
            line = failure_line(e, step) or f"{type(e).__name__}: {e}"
            log.error("work beside training failed: %s", line)
        finally:  # a thread still in torch when the interpreter exits aborts the process
            if self.beside is not None:
                self.beside.close()
            for task in (self._evaluating, self._gaming):
                if task is not None:
                    task.wait()
            self._evaluating = self._gaming = None
        self.figure_writer.drawing.close()
        metrics = self.metrics(status, step, ended_at)
        saved = self.checkpoints.saved_step
        kept = f"step {saved}" if saved is not None else "none yet"
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
            log.error("failed at step %d: %s (last checkpoint: %s)", step, error, kept)
        elif aborted:
            log.warning("aborted at step %d by a second Ctrl-C; last checkpoint: %s", step, kept)
        elif signum is not None:
            log.warning("interrupted at step %d; checkpoint saved", step)
        try:
            self.write_metrics(metrics)
        except WriteError as e:
            log.error("%s", e)
        return RunResult(status, step, metrics, signum)
