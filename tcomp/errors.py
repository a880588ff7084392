"""Errors that tcomp raises for bad input; each message says what was expected."""


class TcompError(Exception):
    """Base of every error tcomp raises on purpose."""


class UnsupportedOpError(TcompError):
    """An ONNX node whose op (or attribute, or dtype) tcomp cannot compile."""

    def __init__(self, op_type: str, node_name: str, opset: int, reason: str):
        self.op_type = op_type
        self.node_name = node_name
        self.opset = opset
        super().__init__(f"unsupported: node '{node_name}' (op {op_type}, opset {opset}): {reason}")


class ModelError(TcompError):
    """A malformed model (fails onnx.checker, missing tensors, inconsistent shapes)."""


class InputError(TcompError):
    """A wrong input name, shape or dtype given to ``run``."""
