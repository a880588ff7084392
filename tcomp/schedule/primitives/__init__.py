"""Schedule primitives, one module per family; importing this package adds them to ``Schedule``."""
from . import queries, loops, sampling, tensorize, cache, layout, reduction, compute_location  # noqa: F401
