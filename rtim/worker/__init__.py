"""The customer worker: the imperative shell around the core (Kafka, RocksDB)."""
