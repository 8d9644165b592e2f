"""Every setting a service reads is documented in the README's table and in .env.example."""

import re

import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from pipeline.settings import PipelineSettings
from pipeline_runtime.broker import BrokerSettings
from pipeline_runtime.smoke import SmokeSettings
from producers.settings import ProducerSettings
from streaming.settings import StreamingSettings
from tests.support.processes import ROOT
from training.settings import TrainingSettings

SETTINGS = [BrokerSettings, SmokeSettings, ProducerSettings, StreamingSettings, TrainingSettings, PipelineSettings]


def variable_names(settings: type[BaseSettings]) -> set[str]:
    names = set()
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add(str(alias.choices[0]) if isinstance(alias, AliasChoices) else f"{prefix}{name}".upper())
    return names


ALL_VARIABLES = sorted(set().union(*(variable_names(s) for s in SETTINGS)))


@pytest.mark.parametrize("variable", ALL_VARIABLES)
def test_setting_is_documented(variable: str) -> None:
    readme_table = re.findall(r"^\| `([A-Z0-9_]+)` \|", (ROOT / "README.md").read_text(), re.MULTILINE)
    example = re.findall(r"^#? ?([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert variable in readme_table, f"{variable} is missing from the README's configuration table"
    assert variable in example, f"{variable} is missing from .env.example"


def test_the_list_is_not_empty() -> None:
    assert {"DATA_DIR", "KAFKA_BOOTSTRAP_SERVERS", "SPARK_MASTER", "MLFLOW_TRACKING_URI"} <= set(ALL_VARIABLES)


def test_pre_commit_runs_what_make_lint_runs() -> None:
    import yaml

    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    lint = [line.strip().removeprefix("$(PY) -m ").rstrip(" .") for line in recipe.splitlines()[1:]]
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    entries = [hook["entry"].removeprefix(".venv/bin/python -m ").replace(" --force-exclude", "") for hook in hooks]
    assert lint == ["ruff check", "ruff format --check", "mypy"]
    assert entries == lint
