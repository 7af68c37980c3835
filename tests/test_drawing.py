"""Figures off the training path (ganopt/drawing.py): the worker changes no bit of a run, a
figure that fails is reported and the run ends ok, the queue is bounded."""

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import wait

import numpy as np
import pytest
import torch

import ganopt.drawing
import ganopt.figures
from ganopt.drawing import QUEUE_SIZE, Drawing
from ganopt.setup import assembly
from tests.conftest import REPO, MemoryLogger, make_trainer
from tests.test_hostile import QUICK, run_main

#: figures, evaluation, the game's spectrum and checkpoints all during a short toy run
DURING = [
    "trainer.figures=true",
    "trainer.steps=24",
    "trainer.log_every=4",
    "trainer.sample_every=8",
    "trainer.eval_every=12",
    "trainer.ckpt_every=12",
    "diagnostics.game_every=12",
    "diagnostics.game_iters=6",
    "trainer.batch_size=64",
    *["model.g.hidden=[32,32]", "model.d.hidden=[32,32]"],
]
#: what metrics.json holds that a clock or the process measured
MEASURED = ("steps_per_sec", "peak_memory_mb")


def _run(run_dir, background):
    trainer, logger = make_trainer(DURING, run_dir)
    trainer.recorder.figure_writer.drawing.background = background
    result = trainer.fit()
    assert result.status == "ok", result.metrics
    weights = {k: v.clone() for k, v in trainer.state.state_dict()["G"].items()}
    weights |= {f"D.{k}": v.clone() for k, v in trainer.state.state_dict()["D"].items()}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return weights, {k: v for k, v in metrics.items() if k not in MEASURED}, logger


def test_figures_drawn_by_the_worker_change_no_bit_of_the_run(tmp_path):
    weights, metrics, logger = _run(tmp_path / "worker", background=True)
    same_weights, same_metrics, same_logger = _run(tmp_path / "here", background=False)
    assert weights.keys() == same_weights.keys()
    assert all(torch.equal(weights[k], same_weights[k]) for k in weights)
    assert metrics == same_metrics
    assert sorted(logger.images) == sorted(same_logger.images)
    assert {tag for tag, _, _ in logger.images} >= {"samples", "gradient_flow/G", "game/spectrum"}
    for run in ("worker", "here"):
        assert (tmp_path / run / "samples.png").is_file()
        assert (tmp_path / run / "gradient_flow.png").is_file()


def test_histograms_are_binned_and_written_by_the_worker(tmp_path, monkeypatch):
    """Binning every layer's gradients cost a log step about a millisecond per histogram on
    the training thread; the worker does it, with the same histograms at the same steps."""
    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: True)
    trainer, logger = make_trainer([*DURING, "trainer.hist_every=8"], tmp_path)
    threads = []
    histogram = logger.histogram
    logger.histogram = lambda *a: threads.append(threading.current_thread()) or histogram(*a)
    assert trainer.fit().status == "ok"
    steps = sorted({step for _, step in logger.histograms})
    assert steps == [8, 16, 24] and threading.main_thread() not in threads
    assert {tag for tag, _ in logger.histograms} >= {"hist/D/out_real", "hist/grad/G/fc1.weight"}


@pytest.mark.parametrize("spare", [True, False])
def test_figures_go_beside_training_only_where_a_cpu_is_spare(tmp_path, monkeypatch, spare):
    """Beside a run whose threads take every CPU, each figure stalled all of them: 1500 DCGAN
    steps took 25.1 s drawing beside training, 23.2 s drawing on the training thread."""
    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: spare)
    trainer, logger = make_trainer([*DURING, "trainer.hist_every=8"], tmp_path)
    assert trainer.recorder.figure_writer.drawing.background == spare
    threads, histogram = [], logger.histogram
    logger.histogram = lambda *a: threads.append(threading.current_thread()) or histogram(*a)
    assert trainer.fit().status == "ok"
    assert threads and (threading.main_thread() in threads) != spare


def broken(picture, step):
    """A drawing that fails, by name, so that the drawing process can run it."""
    raise ValueError("no contour today")


def test_a_figure_that_fails_is_reported_once_and_the_run_ends_ok(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ganopt.figures, "samples_rgb", broken)
    trainer, logger = make_trainer(DURING, tmp_path)
    with caplog.at_level(logging.WARNING, logger="ganopt.trainer"):
        result = trainer.fit()
    assert result.status == "ok"
    reported = [r.getMessage() for r in caplog.records if "figure samples" in r.getMessage()]
    assert len(reported) == 1 and "no contour today" in reported[0]
    assert [t for t in logger.texts if t[0] == "alerts" and "figure samples" in t[1]]
    assert "gradient_flow/G" in {tag for tag, _, _ in logger.images}  # the others are drawn
    assert not (tmp_path / "samples.png").exists()


def test_the_samples_figure_shows_the_weights_of_its_step_while_training_moves_them(
    tmp_path, monkeypatch
):
    """The worker computes the picture from copies taken when the figure was handed over:
    here it is blocked until the live weights have moved on."""
    trainer, _ = make_trainer(DURING, tmp_path)
    writer = trainer.recorder.figure_writer
    writer.drawing.background, seen = True, []
    picture = ganopt.figures.toy_picture
    monkeypatch.setattr(
        ganopt.figures,
        "toy_picture",
        lambda G, D, *a: (
            seen.append([p.clone() for p in (*G.parameters(), *D.parameters())])
            or picture(G, D, *a)
        ),
    )
    live = [*trainer.recorder.figures.sampler().parameters(), *trainer.D.parameters()]
    at_step = [p.detach().clone() for p in live]
    trainable = [p.requires_grad for p in live]
    release = threading.Event()
    writer.drawing.submit("blocker", 0, release.wait)
    writer.samples(1, [], save_png=False)
    with torch.no_grad():
        for p in live:
            p.add_(1.0)
    release.set()
    writer.drawing.close()
    assert len(seen) == 1 and all(map(torch.equal, seen[0], at_step))
    assert [p.requires_grad for p in live] == trainable  # the copies were frozen, not these


def test_the_queue_is_bounded_and_close_waits_for_every_figure():
    drawing, done = Drawing(MemoryLogger()), []
    started, release = threading.Event(), threading.Event()
    drawing.submit("first", 0, lambda: (started.set(), release.wait()))
    started.wait()
    for i in range(QUEUE_SIZE):
        drawing.submit("next", i, lambda i=i: done.append(i))
    assert drawing._jobs.full()  # the next submit would wait for the worker
    release.set()
    drawing.close()
    assert done == list(range(QUEUE_SIZE))


def test_figures_are_drawn_in_a_process_of_their_own_while_training_goes_on():
    """matplotlib on a thread beside the training loop held the interpreter's lock from it:
    while training goes on the drawing runs in another process; none is started after."""
    drawing = Drawing(MemoryLogger())
    try:
        assert drawing.draw(os.getpid) != os.getpid()
        drawing.training_over()
        assert drawing.draw(os.getpid) != os.getpid()  # started: it goes on drawing
    finally:
        drawing.close()
    after_training = Drawing(MemoryLogger())
    after_training.training_over()
    assert after_training.draw(os.getpid) == os.getpid()  # a short run starts no process
    assert Drawing(MemoryLogger(), background=False).draw(os.getpid) == os.getpid()


def test_a_ctrl_c_that_splits_the_pools_shutdown_still_ends_the_drawing_process(monkeypatch):
    """A second Ctrl-C inside the pool's shutdown left its managing thread dead and the drawing
    process (which ignores SIGINT and SIGTERM) waiting for work: the interpreter's exit then
    waited for it forever. Whatever the shutdown does, the process ends with close()."""
    drawing = Drawing(MemoryLogger())
    drawing.start()
    (worker,) = drawing._workers
    assert worker.is_alive()

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ganopt.drawing.ProcessPoolExecutor, "shutdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        drawing.close()
    # ended: its sentinel closes when it exits. Not is_alive(), which can say True a moment
    # longer: the pool's own thread, seeing its worker killed, reaps it too, and the loser of
    # that race reads "still running" until the winner has noted the exit code
    assert wait([worker.sentinel], timeout=0) and drawing._process is None
    monkeypatch.undo()
    drawing.close()  # a second close has nothing left to do


def test_a_figure_after_close_is_drawn_here_and_starts_no_process():
    drawing = Drawing(MemoryLogger())
    drawing.close()
    assert drawing.draw(os.getpid) == os.getpid() and drawing._process is None


def test_the_drawing_process_never_imports_torch():
    """It would spend a second and hundreds of megabytes on an import it does not use."""
    code = (
        "import sys, ganopt.rendering\n"
        "print(sorted(m for m in ('torch', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_checkpoint_never_waits_for_the_figures_of_its_own_step(tmp_path):
    """A checkpoint waits until the figures before it are written; at a step with both, the
    figures were handed over first, so every other checkpoint waited for a whole drawing."""
    trainer, _ = make_trainer([*DURING, "trainer.sample_every=12"], tmp_path)
    drawing, events = trainer.recorder.figure_writer.drawing, []
    save, submit = trainer.checkpoints.save, drawing.submit

    def saved(state, step):
        events.append(("checkpoint", step))
        return save(state, step)

    def submitted(what, step, job):
        events.append((what, step))
        submit(what, step, job)

    trainer.checkpoints.save, drawing.submit = saved, submitted
    assert trainer.fit().status == "ok"
    assert events.index(("checkpoint", 12)) < events.index(("samples", 12))
    assert events.index(("samples", 12)) < events.index(("checkpoint", 24))


@pytest.mark.parametrize(
    ("started", "beside"),
    [(True, True), (False, False)],
    ids=["drawing_started_with_the_run", "no_drawing_process"],
)
def test_the_last_figures_are_drawn_beside_the_evaluation_where_the_drawing_process_runs(
    tmp_path, started, beside
):
    """A run whose only figures come at its end has no drawing process unless it was started
    with the run, as train.py starts it: then they are handed over before the evaluation and
    drawn beside it. Without one they come after the evaluation, which on the worker thread
    they would slow."""
    at_the_end = ["trainer.sample_every=0", "diagnostics.game_every=0"]
    trainer, _ = make_trainer([*DURING, *at_the_end], tmp_path)
    recorder, events = trainer.recorder, []
    drawing = recorder.figure_writer.drawing
    if started:
        recorder.start_drawing()
    evaluate, submit = recorder.evaluate, drawing.submit

    def evaluated(step, **how):
        events.append(("evaluation", step))
        evaluate(step, **how)

    def submitted(what, step, job):
        events.append((what, step))
        submit(what, step, job)

    recorder.evaluate, drawing.submit = evaluated, submitted
    assert trainer.fit().status == "ok"
    assert (events.index(("samples", 24)) < events.index(("evaluation", 24))) == beside


@pytest.mark.parametrize(("figures", "started"), [("true", 1), ("false", 0)])
def test_train_py_starts_the_drawing_process_with_the_run(
    tmp_path, capfd, monkeypatch, figures, started
):
    """train.py's runs start it before training (its main module is guarded), a short run
    too; a run without figures starts none."""
    calls = []
    monkeypatch.setattr(ganopt.drawing.Drawing, "start", lambda self: calls.append(self))
    argv = [*QUICK, "trainer.steps=2", f"trainer.figures={figures}"]
    code, err = run_main(argv, tmp_path / "run", capfd)
    assert code == 0, err
    assert len(calls) == started


@pytest.mark.slow
def test_the_drawing_process_leaves_signals_to_the_run_and_ends_when_the_run_is_killed():
    """Ctrl-C reaches the whole process group: the drawing process took it, the figure's
    KeyboardInterrupt killed the worker thread and the run hung waiting for it. And a run
    killed outright left the drawing process behind."""
    drawing = Drawing(MemoryLogger())
    try:
        pid = drawing.draw(os.getpid)
        for signum in (signal.SIGINT, signal.SIGTERM):
            os.kill(pid, signum)
            time.sleep(0.3)
            assert drawing.draw(os.getpid) == pid  # still there, still drawing
    finally:
        drawing.close()
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from ganopt.drawing import Drawing\n"
            "from tests.conftest import MemoryLogger\n"
            "print(Drawing(MemoryLogger()).draw(os.getpid), flush=True)\n"
            "os._exit(9)  # as SIGKILL would end it: nothing stops the drawing process\n",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    orphan = int(killed.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(orphan)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone but for its parent's wait
        return stat.read().split()[2] != "Z"


def test_a_histogram_is_numpys_binning_done_by_torch(tmp_path, monkeypatch):
    """The logger bins with torch (TensorBoard's own binning starts OpenBLAS's spinning threads
    beside training): the same counts, range and moments as numpy's histogram of the values."""
    from torch.utils.tensorboard import summary

    from ganopt.logger import HISTOGRAM_BINS, TensorBoardLogger

    monkeypatch.setattr(summary, "make_histogram", lambda *a, **k: pytest.fail("numpy's"))
    logger = TensorBoardLogger(tmp_path)
    written = {}
    monkeypatch.setattr(logger.writer, "add_histogram_raw", lambda tag, **k: written.update(k))
    values = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0)) * 3 + 1
    logger.histogram("hist/x", values, 7)
    logger.close()
    x = values.double().flatten().numpy()
    counts, limits = np.histogram(x, bins=HISTOGRAM_BINS)
    assert written["global_step"] == 7 and written["num"] == x.size
    assert written["bucket_counts"] == counts.tolist()
    assert np.allclose(written["bucket_limits"], limits[1:])
    assert written["min"] == x.min() and written["max"] == x.max()
    assert np.isclose(written["sum"], x.sum()) and np.isclose(written["sum_squares"], x @ x)
