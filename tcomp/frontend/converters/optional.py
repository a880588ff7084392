"""Converters of the optional ops on what tcomp compiles: tensors, and absent inputs.

tcomp has no optional type: a graph input of optional type is refused where a node reads it
(the importer), so these ops only meet a plain tensor (present) or an omitted input (absent).
"""
from __future__ import annotations

import numpy as np

from .common import ConvertError, converter


@converter("OptionalHasElement")
def _has_element(ctx, inputs, attrs):
    present = bool(inputs) and inputs[0] is not None
    return [ctx.const(np.array(present), "has_element")]


@converter("OptionalGetElement")
def _get_element(ctx, inputs, attrs):
    if not inputs or inputs[0] is None:
        raise ConvertError("OptionalGetElement of an absent optional")
    return [inputs[0]]
