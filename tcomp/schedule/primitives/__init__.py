"""Schedule primitives, one module per family; importing this package adds them to ``Schedule``."""
from . import cache, compute_location, layout, loops, queries, reduction, sampling, tensorize  # noqa: F401
