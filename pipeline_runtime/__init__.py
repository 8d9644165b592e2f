"""Runtime shared by the producer, streaming and training services.

Small on purpose: settings helpers, the vocabulary the services share (`contract`), the Spark session
builder, the Kafka admin calls, MLflow defaults, and the local Kafka broker process for development and
tests. The three service packages depend on this package, never on each other; it imports none of them.
"""
