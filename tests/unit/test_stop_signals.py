"""SIGTERM and Ctrl-C stop a service at its next safe point, whatever lock its main thread holds when they come."""

import subprocess
import sys

from tests.support.processes import ROOT, clean_env

# The main thread holds the stop event's lock (as it does for a moment on every `stop.wait(...)` of a service's
# loop) when SIGTERM arrives: Python runs the handler right there, in that thread.
WHILE_HOLDING_THE_LOCK = """
import logging, os, signal, sys, time
from pipeline_runtime.cli import install_stop_handlers

logging.basicConfig(level=logging.INFO, stream=sys.stdout)
stop = install_stop_handlers(logging.getLogger("service"), "the test")
with stop._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    print("handler returned", flush=True)
print("stopped" if stop.wait(10) else "not stopped", flush=True)
"""


def test_a_stop_signal_while_the_main_thread_holds_the_stop_lock_stops_the_service() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WHILE_HOLDING_THE_LOCK],
        env=clean_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,  # a handler that waits for that lock never returns: the run would hang here
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["handler returned", "stopped"], result.stdout
    assert "SIGTERM received: stopping the test" in result.stdout
