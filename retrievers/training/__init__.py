"""retrievers.training."""
