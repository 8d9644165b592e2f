"""Set-up paths outside Python: the Maven check in `make jars`, and Spark's fallback without jars/spark."""

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.processes import ROOT, clean_env, run_module


def test_make_jars_without_maven_says_how_to_fix(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "java", "make", "rm", "ls", "mv", "wc"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    result = subprocess.run(
        ["make", "--no-print-directory", "jars", f"JARS_DIR={tmp_path / 'jars'}"],
        cwd=ROOT,
        env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/tmp")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "error: Maven (mvn) not found: install it" in result.stdout + result.stderr
    assert not (tmp_path / "jars").exists()


def test_spark_falls_back_to_packages_without_the_jar_folder(tmp_path: Path, bootstrap_servers: str) -> None:
    """No jars/spark: Spark resolves Delta and the Kafka connector by coordinates from Maven Central
    (into an Ivy cache kept between runs) and the session still has both data sources."""
    ivy = Path.home() / ".cache" / "spotify-pipeline-tests" / "ivy"
    env = clean_env(
        JARS_DIR=str(tmp_path / "no-jars"),
        DATA_DIR=str(tmp_path / "data"),
        KAFKA_BOOTSTRAP_SERVERS=bootstrap_servers,
        SPARK_MASTER="local[1]",
        SPARK_UI_ENABLED="false",
        SPARK_CONF=json.dumps({"spark.jars.ivy": str(ivy)}),
    )
    result = run_module("streaming", "check", env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "with Delta and Kafka" in result.stdout
    assert "Spark will download Delta and the Kafka connector" in result.stderr
    resolved = {p.name for p in (ivy / "jars").glob("*.jar")}
    assert any(name.startswith("io.delta_delta-spark_4.2_2.13") for name in resolved), resolved
