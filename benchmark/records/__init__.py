"""benchmark.records."""
