"""The functional core: pure logic with no Kafka, Faust or I/O imports."""
