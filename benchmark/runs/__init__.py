"""benchmark.runs."""
