"""retrievers.resources."""
