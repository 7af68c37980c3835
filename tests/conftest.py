"""Shared helpers: build and run the Trainer in-process without TensorBoard.

Imports nothing heavy at the top: under pytest-xdist this file is also loaded by the process that
only hands tests to the workers, and torch and Hydra there would delay every worker's start."""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import os
import signal
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch

    from ganopt.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> types.ModuleType:
    """scripts/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread here and in every subprocess (2-core CI machines: two threads per
    process oversubscribe them), and SIGTERM stops the session like Ctrl-C does: a test in
    subprocess.run kills its child on the way out instead of leaving it running."""
    os.environ["OMP_NUM_THREADS"] = "1"
    if not _hands_out_tests_only(config):
        import torch

        torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, _interrupt)


def _hands_out_tests_only(config: pytest.Config) -> bool:
    """pytest-xdist's controller: its workers run the tests."""
    workers = getattr(config.option, "numprocesses", None)  # still set under -p no:xdist
    distributing = bool(workers) and config.pluginmanager.hasplugin("xdist")
    return distributing and not _in_worker()


def _in_worker() -> bool:
    """A pytest-xdist worker: it runs tests and exits when its session ends."""
    return "PYTEST_XDIST_WORKER" in os.environ


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


#: small, quiet runs: no progress bar, no figures, periodic checkpoints or game spectrum unless
#: asked (the spectrum leaves a run's bits alone: tests/test_game.py; nor do the figures:
#: tests/test_drawing.py)
FAST = [
    "trainer.progress=false",
    "trainer.figures=false",
    "trainer.sample_every=0",
    "trainer.hist_every=0",
    "trainer.eval_every=0",
    "trainer.ckpt_every=0",
    "diagnostics.game_every=0",
]


class MemoryLogger:
    """Stands in for TensorBoardLogger: keeps what would have been written."""

    def __init__(self) -> None:
        self.scalar_log: dict[str, list[tuple[int, float]]] = {}
        self.histograms: list[tuple[str, int]] = []
        self.images: list[tuple[str, int, tuple[int, ...]]] = []
        self.texts: list[tuple[str, str, int]] = []
        self.expected_tags: set[str] = set()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.scalar_log.setdefault(tag, []).append((step, value))

    def histogram(self, tag: str, values: object, step: int) -> None:
        self.histograms.append((tag, step))

    def image(self, tag: str, rgb: object, step: int) -> None:
        self.images.append((tag, step, rgb.shape))

    def text(self, tag: str, text: str, step: int) -> None:
        self.texts.append((tag, text, step))

    def close(self) -> None:
        pass


def first_state(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state of the first tensor it steps (a network's one buffer under
    trainer.flat_params, else its first parameter)."""
    return optimizer.state[optimizer.param_groups[0]["params"][0]]


def make_trainer(overrides: list[str], run_dir: Path) -> tuple[Trainer, MemoryLogger]:
    """Compose, build and wire a Trainer exactly as train.py does, with an in-memory logger."""
    from ganopt.composition import compose_config
    from ganopt.setup import assembly

    logger = MemoryLogger()
    return assembly.make_trainer(
        assembly.build(compose_config([*FAST, *overrides])), run_dir, logger
    ), logger


def write_digest(checkpoint: Path) -> None:
    """A digest beside a checkpoint a test wrote by hand, so that loading gets past it."""
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    Path(f"{checkpoint}.sha256").write_text(f"{digest}  {Path(checkpoint).name}\n")


def as_run_dir(path: Path) -> str:
    """make_trainer writes checkpoints but not Hydra's record, which resume= also needs."""
    (path / ".hydra").mkdir(parents=True, exist_ok=True)
    (path / ".hydra" / "overrides.yaml").write_text("[]")
    return str(path)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def private_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits classifier is trained on first use, never in the user's cache: in pytest's own
    cache (.pytest_cache, so a checkout trains it once, not every session: five seconds of the
    fast subset), one per torch version, whose kernels its weights depend on, and per version of
    the code that trains it; under ``-p no:cacheprovider``, in the session's temp directory.
    Subprocesses inherit the variable; pytest-xdist's workers share one cache (it is written
    atomically)."""
    import torch

    cache = getattr(request.config, "cache", None)
    if cache is not None:
        code = (REPO / "ganopt" / "evaluation" / "digits_classifier.py").read_bytes()
        digest = hashlib.sha256(code).hexdigest()[:12]
        path = cache.mkdir(f"ganopt-torch-{torch.__version__}-{digest}")
    else:
        base = tmp_path_factory.getbasetemp()
        path = (base.parent if _in_worker() else base) / "ganopt-cache"
        path.mkdir(exist_ok=True)
    previous = os.environ.get("GANOPT_CACHE_DIR")
    os.environ["GANOPT_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        del os.environ["GANOPT_CACHE_DIR"]
    else:
        os.environ["GANOPT_CACHE_DIR"] = previous


#: pytest's cache key of each test's seconds (setup, call and teardown) when it last ran
TEST_SECONDS = "ganopt/test-seconds"
_RECORD = pytest.StashKey[dict[str, float]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files whose tests took longest when last run go first, each file's tests in their
    order: pytest-xdist's workers then end on short tests instead of one waiting for the other's
    long one (about a second of the fast subset). No record (a fresh checkout): the order as
    found."""
    worker = getattr(config, "workerinput", None)
    seconds = worker.get(TEST_SECONDS, {}) if worker is not None else _record(config)
    files: dict[str, float] = {}
    for item in items:
        files[_file(item.nodeid)] = files.get(_file(item.nodeid), 0.0) + seconds.get(item.nodeid, 0)
    items.sort(key=lambda item: -files[_file(item.nodeid)])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """pytest-xdist's workers, a worker started again after a crash included, sort by the record
    the controller read once: workers that collect the tests in different orders stop the run."""
    node.workerinput[TEST_SECONDS] = _record(node.config)


def _record(config: pytest.Config) -> dict[str, float]:
    """The record as this session found it, read once."""
    if _RECORD not in config.stash:
        cache = getattr(config, "cache", None)
        config.stash[_RECORD] = cache.get(TEST_SECONDS, {}) if cache is not None else {}
    return config.stash[_RECORD]


def _file(nodeid: str) -> str:
    return nodeid.split("::")[0]


_session_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each test's seconds this session (setup, call and teardown), in whichever process sees
    the reports: pytest-xdist's controller, or pytest itself without workers."""
    _session_seconds[report.nodeid] = _session_seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The tests run this session (all of them, or those -k, -m or a failure let run) replace
    their records; the others keep theirs, unless their file is gone."""
    config = session.config
    cache = getattr(config, "cache", None)
    if cache is None or _in_worker() or not _session_seconds:
        return
    record = _record(config) | _session_seconds
    cache.set(TEST_SECONDS, {k: v for k, v in record.items() if (REPO / _file(k)).is_file()})


def pytest_unconfigure(config: pytest.Config) -> None:
    """A pytest-xdist worker's session is over and the process ends: its interpreter's last
    garbage collection, which walks every object torch, Hydra and the tests made (0.7 s of the
    exit the session waits for), may leave them alone. What the tests wrote is closed by now;
    objects freed by reference counting still are. Not elsewhere: a process that ran pytest
    in-process goes on, and would never collect them."""
    if _in_worker():
        gc.freeze()
