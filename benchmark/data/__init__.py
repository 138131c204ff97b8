"""benchmark.data."""
