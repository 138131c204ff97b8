"""benchmark.evaluation."""
