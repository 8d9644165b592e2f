"""Java detection: the version parser and the messages for missing or old Java."""

import stat
from pathlib import Path

import pytest

from pipeline_runtime.errors import SetupError
from pipeline_runtime.java import check_java, parse_java_major


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.22" 2024-01-16', 11),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def fake_java_home(tmp_path: Path, version_line: str) -> Path:
    """A JAVA_HOME whose bin/java prints `version_line` like `java -version` does (on stderr)."""
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return tmp_path / "jdk"


def test_machine_java_is_17_or_newer() -> None:
    assert check_java(None).major >= 17


def test_missing_java_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"Java not found \(JAVA_HOME=.*\): install Java 17"):
        check_java(tmp_path / "no-such-jdk")


def test_old_java_is_refused(tmp_path: Path) -> None:
    home = fake_java_home(tmp_path, 'openjdk version "11.0.22" 2024-01-16')
    with pytest.raises(SetupError, match=r"Java 11 found .* Java 17 or newer is needed"):
        check_java(home)


def test_new_java_is_accepted(tmp_path: Path) -> None:
    home = fake_java_home(tmp_path, 'openjdk version "21.0.5" 2024-10-15')
    assert check_java(home).major == 21
