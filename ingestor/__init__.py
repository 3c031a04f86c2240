"""news-ingestor: live news pages and feeds turned into deduplicated Kafka events."""

__version__ = "0.1.0"
