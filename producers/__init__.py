"""Producer service: polls the Spotify Web API and publishes track events to Kafka."""
