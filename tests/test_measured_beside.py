"""Log-step measurements beside training (ganopt/diagnostics/beside.py): the values measured
inline, bit for bit, written with their step's other scalars; replicas that equal their
networks; a failure raised on the training thread."""

import os
import signal
import threading
import time

import pytest
import torch
from torch import nn

from ganopt.diagnostics.beside import BesideWorker, Replica
from ganopt.drawing import Drawing
from ganopt.evaluation.background import BackgroundEvaluation
from ganopt.setup import assembly
from ganopt.stopping import StopRequest, signals_held
from tests.conftest import MemoryLogger, make_trainer

MLP = ["model.g.hidden=[32,32]", "model.d.hidden=[32,32]", "trainer.batch_size=64"]
LOGGED = ["trainer.steps=9", "trainer.log_every=2", "trainer.hist_every=3"]  # 3: histograms alone


def _scalars(overrides, run_dir, beside, monkeypatch):
    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: beside)
    trainer, logger = make_trainer([*overrides, *LOGGED], run_dir)
    assert (trainer.diagnostics.beside is not None) == beside
    assert trainer.fit().status == "ok"
    weights = [t.clone() for t in trainer.state.state_dict()["G"].values()]
    timed = {tag for tag in logger.scalar_log if tag.startswith("perf/")}  # a clock's
    return {k: v for k, v in logger.scalar_log.items() if k not in timed}, weights


@pytest.mark.parametrize(
    "config",
    [
        MLP,
        [*MLP, "loss=rsgan", "diagnostics.shadow=true"],
        [*MLP, "loss=wgan_gp", "reg=instance_noise", "trainer.ema_decay=null"],
        [*MLP, "experiment=sngan", "trainer.steps=9"],
        [
            "model=dcgan",
            "data=digits",
            "model.g.width=8",
            "model.d.width=8",
            "trainer.batch_size=16",
            "diagnostics.shadow=true",
        ],
    ],
    ids=["toy", "relativistic", "gp+noise", "spectral_norm", "dcgan_batchnorm_d"],
)
def test_measured_beside_training_the_run_logs_what_it_logs_inline_bit_for_bit(
    config, tmp_path, monkeypatch
):
    inline, inline_weights = _scalars(config, tmp_path / "inline", False, monkeypatch)
    beside, beside_weights = _scalars(config, tmp_path / "beside", True, monkeypatch)
    assert beside == inline  # every tag, every step, every value
    assert all(map(torch.equal, beside_weights, inline_weights))
    assert {"grad_x/D/real", "grad_x/D/interp"} <= beside.keys()
    if "diagnostics.shadow=true" in config or config is MLP:
        assert any(tag.startswith("grad_norm_shadow/G/") for tag in beside)


def test_a_replica_equals_its_network_and_waits_for_the_jobs_that_read_it():
    worker = BesideWorker()
    live = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4))
    replica = Replica(live, worker)
    copy = replica.refresh()
    started, release = threading.Event(), threading.Event()
    replica.read_by(worker.submit(1, lambda: (started.set(), release.wait(), {})[-1]))
    started.wait()
    with torch.no_grad():
        live[0].weight.add_(1.0)
    live(torch.randn(8, 2))  # moves BatchNorm's running statistics
    live.eval()
    live[1].weight.requires_grad_(False)
    refreshed = threading.Thread(target=replica.refresh)
    refreshed.start()
    refreshed.join(0.2)
    assert refreshed.is_alive()  # the job still reads the replica
    release.set()
    refreshed.join()
    assert replica.refresh() is copy and not copy.training
    pairs = [
        *zip(copy.parameters(), live.parameters(), strict=True),
        *zip(copy.buffers(), live.buffers(), strict=True),
    ]
    assert all(torch.equal(mine, theirs) for mine, theirs in pairs)
    assert [p.requires_grad for p in copy.parameters()] == [True, True, False, True]
    assert all(p.data_ptr() != q.data_ptr() for p, q in pairs)


def test_a_steps_values_come_back_together_once_all_its_jobs_are_done():
    worker, release = BesideWorker(), threading.Event()
    worker.submit(2, lambda: {"a": torch.tensor(1.0)})
    worker.submit(2, lambda: (release.wait(), {"b": torch.tensor(2.0)})[-1])
    worker.wait(1)
    assert worker.measures(2) and worker.ready() == []
    release.set()
    [(step, values)] = worker.ready(wait=True)
    assert step == 2 and values == {"a": torch.tensor(1.0), "b": torch.tensor(2.0)}
    assert not worker.measures(2) and worker.ready() == []


def test_what_a_job_raised_is_raised_on_the_training_thread_and_ends_the_run(tmp_path, monkeypatch):
    worker = BesideWorker()
    worker.submit(1, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        worker.ready(wait=True)

    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: True)
    trainer, _ = make_trainer([*MLP, *LOGGED], tmp_path)

    def fails(*args):
        raise MemoryError

    monkeypatch.setattr("ganopt.diagnostics.measurements.input_gradient_norms", fails)
    result = trainer.fit()
    assert result.status == "failed" and result.metrics["error"].startswith("out of memory")


def test_a_failed_job_leaves_the_other_steps_values_to_be_read():
    worker = BesideWorker()
    worker.submit(1, lambda: {"a": torch.tensor(1.0)})
    worker.submit(2, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        worker.ready(wait=True)
    assert [step for step, _ in worker.ready()] == [1, 2]  # step 2 with what it measured
    worker.close()


def test_worker_threads_never_take_the_runs_signals():
    """A signal the kernel delivered to a worker ran its handler inside a block where the
    training thread holds signals (between a checkpoint and its metrics.json)."""
    masks = []
    worker = BesideWorker()
    worker.submit(1, lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])) or {})
    worker.close()
    Drawing(MemoryLogger()).submit(
        "mask", 1, lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    )
    BackgroundEvaluation(
        1,
        lambda G: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])) or {},
        nn.Linear(1, 1),
    ).result()
    deadline = time.monotonic() + 10
    while len(masks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(masks) == 3
    assert all({signal.SIGINT, signal.SIGTERM} <= mask for mask in masks)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # not here


def test_a_run_stops_its_measuring_thread_at_the_end(tmp_path, monkeypatch):
    """Hydra's basic launcher runs a sweep's jobs in one process: each run's thread, and the
    last job's replicas, would stay."""
    monkeypatch.setattr(assembly, "spare_core", lambda device, processes: True)
    trainer, _ = make_trainer([*MLP, *LOGGED], tmp_path)
    before = {t.name for t in threading.enumerate()}
    assert trainer.fit().status == "ok"
    assert trainer.diagnostics.beside._thread is None
    assert "ganopt-measure" not in {t.name for t in threading.enumerate()} - before


def test_a_second_ctrl_c_while_signals_are_held_waits_for_the_end_of_the_block():
    """The kernel may deliver a signal to any thread that does not block it (TensorBoard's
    writer, tqdm's monitor, a pool's feeder), and Python runs the handler on the main thread
    even inside a block that blocks signals there: the run's handler defers it itself."""
    release, inside = threading.Event(), []
    other = threading.Thread(target=release.wait)  # a thread that blocks nothing
    other.start()

    def checkpoint_and_metrics(stop):
        with signals_held():
            for _ in range(2):  # a second Ctrl-C: abort, but not in here
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(25):
                    time.sleep(0.01)  # a handler would run between these
            inside.append(stop.signal)  # neither reached the run while held

    try:
        with StopRequest() as stop:
            with pytest.raises(KeyboardInterrupt):
                checkpoint_and_metrics(stop)
            assert inside == [None] and stop.signal == signal.SIGINT
    finally:
        release.set()
        other.join()


def test_work_goes_beside_training_only_on_a_cpu_with_a_core_its_threads_leave_free(
    monkeypatch,
):
    from ganopt.setup import device

    monkeypatch.setattr(device, "usable_cpus", lambda: 4)
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert device.spare_core(cpu) and not device.spare_core(cpu, processes=2)  # torchrun's
        torch.set_num_threads(4)
        assert not device.spare_core(cpu)
        assert not device.spare_core(torch.device("cuda"))  # behind the steps, on one stream
    finally:
        torch.set_num_threads(threads)
