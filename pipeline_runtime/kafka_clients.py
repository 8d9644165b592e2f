"""One set of Kafka settings (security, extra properties), said in each client's words: librdkafka
(confluent-kafka), the Java client (Spark's Kafka source, with the `kafka.` prefix) and kafka-python.

Pure functions of the settings. The SASL password leaves its SecretStr only here, into the client's
configuration: never into a log line, an event or an error message.
"""

from typing import Any

from pipeline_runtime.settings import KafkaSettings

LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def uses_sasl(settings: KafkaSettings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def uses_tls(settings: KafkaSettings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def sasl_credentials(settings: KafkaSettings) -> tuple[str, str]:
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return settings.kafka_sasl_username or "", password


def librdkafka_config(settings: KafkaSettings) -> dict[str, str]:
    """confluent-kafka's producer and admin client: bootstrap servers, security and the extra properties."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
    }
    if uses_sasl(settings):
        username, password = sasl_credentials(settings)
        config.update({"sasl.mechanism": settings.kafka_sasl_mechanism, "sasl.username": username})
        config["sasl.password"] = password
    if uses_tls(settings) and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    config.update(settings.kafka_client_properties)
    return config


def jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def java_client_config(settings: KafkaSettings) -> dict[str, str]:
    """The Java client's properties (without bootstrap servers): Spark takes each as a `kafka.`-prefixed option."""
    config: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if uses_sasl(settings):
        username, password = sasl_credentials(settings)
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.jaas.config"] = (
            f"{LOGIN_MODULES[settings.kafka_sasl_mechanism]} required "
            f"username={jaas_quote(username)} password={jaas_quote(password)};"
        )
    if uses_tls(settings) and settings.kafka_ssl_ca_location:
        config.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(settings.kafka_ssl_ca_location)})
    config.update(settings.kafka_client_properties)
    return config


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python's keyword arguments (its names are the Kafka names with _ for .)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
    }
    if uses_sasl(settings):
        username, password = sasl_credentials(settings)
        config.update({"sasl_mechanism": settings.kafka_sasl_mechanism, "sasl_plain_username": username})
        config["sasl_plain_password"] = password
    if uses_tls(settings) and settings.kafka_ssl_ca_location:
        config["ssl_cafile"] = str(settings.kafka_ssl_ca_location)
    config.update({key.replace(".", "_"): value for key, value in settings.kafka_client_properties.items()})
    return config
