"""benchmark.serving."""
