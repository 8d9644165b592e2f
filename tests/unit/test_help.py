"""Every entry point's `--help` answers at once: it lists its commands and loads none of the heavy
libraries (Spark, MLflow, pandas...) that only its commands need."""

import json
import subprocess
import sys

import pytest

from tests.support.processes import ROOT, clean_env

HEAVY = ("pyspark", "mlflow", "numpy", "pandas", "delta", "sklearn", "matplotlib", "spotipy", "confluent_kafka")
SHOWS = {
    "pipeline_runtime": "smoke",
    "producers": "check",
    "streaming": "check",
    "training": "check",
    "pipeline": "demo",
    "benchmarks": "--quick",
}
# `python -m MODULE --help`, and then which heavy libraries that loaded.
PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = [{module!r}, "--help"]
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
print(json.dumps({{"help": out.getvalue(), "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


@pytest.mark.parametrize("module", sorted(SHOWS))
def test_help_lists_the_commands_without_loading_heavy_libraries(module: str) -> None:
    code = PROBE.format(module=module, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert f"python -m {module}" in answer["help"]
    assert SHOWS[module] in answer["help"]
    assert answer["heavy"] == [], f"--help of {module} loaded {answer['heavy']}"
