"""Streaming service: Spark Structured Streaming from the Kafka topics into Delta tables."""
