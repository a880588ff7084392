"""Runtime: memory planning and the graph executor."""
