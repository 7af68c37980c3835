"""A test that waits on a child process, as the end-to-end tests wait on train.py;
tests/test_suite.py sends pytest SIGTERM meanwhile."""

import os
import subprocess
import sys


def test_waits_on_a_child():
    pid_file = os.environ["GANOPT_TEST_PID_FILE"]
    code = f"import os, time; open({pid_file!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    subprocess.run([sys.executable, "-c", code], timeout=120)
