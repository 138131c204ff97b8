"""benchmark.report."""
