"""The imperative shell's Kafka side: client configuration, embedded broker, topics."""
