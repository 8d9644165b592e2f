"""Kafka's own admin tools (`kafka-topics`, `kafka-consumer-groups`, ...) from the project's jars (`jars/kafka`),
pointed at the configured cluster: `python -m pipeline_runtime kafka topics --describe`.

The bootstrap servers come from KAFKA_BOOTSTRAP_SERVERS and the client's security settings (KAFKA_SECURITY_PROTOCOL,
SASL, TLS, KAFKA_CLIENT_PROPERTIES) from the same settings the services use, through a properties file only this
user can read, removed when the tool exits. Anything the tool is given explicitly wins.
"""

import os
import subprocess
import tempfile
from pathlib import Path

from pipeline_runtime.errors import SetupError
from pipeline_runtime.java import java_executable
from pipeline_runtime.kafka_clients import java_client_config
from pipeline_runtime.settings import KafkaSettings

# tool -> its main class in Kafka 4.1 (kafka-tools, and the broker's jar for ConfigCommand)
TOOLS = {
    "topics": "org.apache.kafka.tools.TopicCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "configs": "kafka.admin.ConfigCommand",
    "get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
}
# The flag that takes the client's properties file: `--command-config`, but the console consumer's own.
CONFIG_FLAG = {"console-consumer": "--consumer.config"}


def tool_command(settings: KafkaSettings, tool: str, args: list[str], config_file: Path) -> list[str]:
    """The JVM command line that runs `tool` with `args` against the configured cluster."""
    flag = CONFIG_FLAG.get(tool, "--command-config")
    given = {arg.split("=", 1)[0] for arg in args}
    defaults = [] if "--bootstrap-server" in given else ["--bootstrap-server", settings.kafka_bootstrap_servers]
    if flag not in given:
        defaults += [flag, str(config_file)]
    classpath = f"{settings.jars_dir.resolve() / 'kafka'}/*"
    return [java_executable(settings.java_home), "-cp", classpath, TOOLS[tool], *defaults, *args]


def properties_text(config: dict[str, str]) -> str:
    """Java properties (one `key=value` a line; `\\`, `=`, `:` and line breaks escaped)."""

    def escaped(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")

    return "".join(f"{escaped(key)}={escaped(value)}\n" for key, value in sorted(config.items()))


def run_tool(settings: KafkaSettings, tool: str, args: list[str]) -> int:
    """Run the tool in the foreground (its output is the terminal's); its exit code."""
    if not (settings.jars_dir / "kafka" / "MANIFEST.txt").is_file():
        raise SetupError(f"Kafka's jars are not in {settings.jars_dir / 'kafka'}: run `make jars`")
    with tempfile.TemporaryDirectory(prefix="kafka-tool-") as folder:  # mode 0700: the properties hold secrets
        config_file = Path(folder) / "client.properties"
        descriptor = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(properties_text(java_client_config(settings)))
        return subprocess.run(tool_command(settings, tool, args, config_file), check=False).returncode
