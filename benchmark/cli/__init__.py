"""benchmark.cli."""
