"""The test suite itself: it stops on SIGTERM, and takes its children with it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

SLEEPING_TEST = "tests/scripts/waits_on_a_child.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_sigterm_stops_pytest_and_the_subprocess_it_waits_on(tmp_path):
    pid_file = tmp_path / "child.pid"
    pytest_run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", SLEEPING_TEST],
        cwd=REPO,
        env={**os.environ, "GANOPT_TEST_PID_FILE": str(pid_file)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and pytest_run.poll() is None
        time.sleep(0.1)
    child = int(pid_file.read_text())
    pytest_run.send_signal(signal.SIGTERM)
    pytest_run.wait(timeout=20)  # it used to ignore SIGTERM for 25 s and more
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
