"""retrievers.index."""
