"""The customer worker: the imperative shell around the core (Kafka in, RocksDB state, Kafka out)."""
