"""Graph IR, simplification passes and fusion."""
