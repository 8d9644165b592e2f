"""The fault tier: every test records the figures it checked (events sent, rows found, duplicates,
quarantined, restarts...) with the `figures` fixture; they are printed as they are recorded and again,
all together, at the end of the run, passed or not (tests/conftest.py gathers them from the reports).

Run alone with `make test-faults` (pytest tests/faults); `make test` runs them too.
"""

import subprocess
import sys
from collections.abc import Callable
from secrets import token_hex
from typing import TYPE_CHECKING

import pytest

from tests.support.figures import FIGURES
from tests.support.training import PAIR_ROWS, TrainerPair

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def format_figures(values: dict[str, object]) -> str:
    return ", ".join(
        f"{name.replace('_', ' ')} {value:,}"
        if isinstance(value, int) and not isinstance(value, bool)
        else f"{name.replace('_', ' ')} {value}"
        for name, value in values.items()
    )


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """figures(what="...", events_sent=100000, duplicates=0): one line of what this test checked, kept with
    the test's report (so it reaches the summary from a pytest-xdist worker too)."""

    def record(what: str = "", **values: object) -> None:
        name = request.node.name + (f" [{what}]" if what else "")
        line = format_figures(values)
        request.node.user_properties.append((FIGURES, f"{name}: {line}"))
        print(f"\n{name}: {line}")

    return record


# --- two trainers started together: the trainer faults and the security scan share their run ---


@pytest.fixture(scope="session")
def trainer_pair(spark: "SparkSession", tmp_path_factory: pytest.TempPathFactory) -> TrainerPair:
    """`python -m training run --once` twice at the same moment on a fresh data dir, with a client secret
    and an MLflow token in the environment and logs at DEBUG: one trains, the other says who holds the lock.
    One full training cycle serves tests/faults/test_trainer_faults.py and the MLflow scan of test_security."""
    from producers.sandbox.catalogue import generate_catalogue, gold_rows
    from tests.support.processes import local_env
    from tests.support.training import SMALL, gold_location, write_gold

    folder = tmp_path_factory.mktemp("trainer-pair")
    data_dir = folder / "data"
    rows = gold_rows(generate_catalogue(21, SMALL), "extended")
    write_gold(spark, gold_location(data_dir), rows[:PAIR_ROWS])
    secrets = {f"secret-{token_hex(12)}", f"token-{token_hex(12)}"}
    secret, token = sorted(secrets)
    env = local_env(
        data_dir,
        SPOTIFY_CLIENT_ID="client-id",
        SPOTIFY_CLIENT_SECRET=secret,
        MLFLOW_TRACKING_TOKEN=token,
        LOG_LEVEL="DEBUG",
        # Locking, secrets and the champion rule do not depend on the identity encodings (tests/component and
        # the demo train with them): a cycle without their fits is about 20 s shorter.
        TRAINING_EXCLUDE_FEATURES="artists,album",
    )
    logs = [folder / "first.log", folder / "second.log"]
    pair = []
    for log in logs:
        with log.open("wb") as output:
            pair.append(
                subprocess.Popen(
                    [sys.executable, "-m", "training", "run", "--once"],
                    env=env,
                    cwd=folder,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    codes = [process.wait(900) for process in pair]
    return TrainerPair(data_dir, rows, [p.pid for p in pair], codes, [log.read_text() for log in logs], secrets)
