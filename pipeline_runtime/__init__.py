"""Runtime glue shared by the producer, streaming and training services.

Small on purpose: settings helpers, the Spark session builder, MLflow defaults and the local
Kafka broker. The three service packages depend on this package, never on each other.
"""
