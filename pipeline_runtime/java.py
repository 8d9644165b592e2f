"""Find Java and check its version: Spark 4, Delta 4 and the Kafka 4 broker all need Java 17+."""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline_runtime.errors import SetupError

MIN_JAVA = 17
INSTALL_HINT = "install Java 17 (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME to one"


@dataclass(frozen=True)
class JavaInfo:
    executable: str
    major: int


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output: '17.0.15' -> 17, '1.8.0_392' -> 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def java_executable(java_home: Path | None) -> str:
    return str(java_home / "bin" / "java") if java_home else "java"


def check_java(java_home: Path | None) -> JavaInfo:
    """Run `java -version`; raise SetupError saying what to install when Java is missing or too old."""
    executable = java_executable(java_home)
    where = f"JAVA_HOME={java_home}" if java_home else "`java` on PATH"
    try:
        result = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise SetupError(f"Java not found ({where}): {INSTALL_HINT}.") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"Java at {where} could not run ({exc}): {INSTALL_HINT}.") from None
    major = parse_java_major(result.stderr + result.stdout)
    if major is None:
        raise SetupError(f"Could not read the Java version from {where}: {INSTALL_HINT}.")
    if major < MIN_JAVA:
        raise SetupError(f"Java {major} found ({where}), but Java {MIN_JAVA} or newer is needed: {INSTALL_HINT}.")
    return JavaInfo(executable=executable, major=major)
