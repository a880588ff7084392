"""Errors that tcomp raises for bad input; each message says what was expected."""


class TcompError(Exception):
    """Base of every error tcomp raises on purpose."""


class UnsupportedOpError(TcompError):
    """A node (ONNX, or an ATen op of a torch program) whose op, attribute or dtype tcomp cannot compile."""

    def __init__(self, op_type: str, node_name: str, opset: int, reason: str):
        self.op_type = op_type
        self.node_name = node_name
        self.opset = opset
        opset_text = f", opset {opset}" if opset is not None else ""  # None: not an ONNX node
        super().__init__(f"unsupported: node '{node_name}' (op {op_type}{opset_text}): {reason}")


class ShapeOperandError(UnsupportedOpError):
    """A node needs an operand at compile time (a shape, axes, pads ...) that comes from graph inputs.

    ``input_names`` are those graph inputs; compiling with their values,
    ``tcomp.compile(model, constant_inputs={name: array})``, specializes the model on them.
    """

    def __init__(self, op_type: str, node_name: str, opset: int, reason: str, input_names: list):
        self.input_names = list(input_names)
        super().__init__(op_type, node_name, opset,
                         f"{reason}; it comes from graph input(s) {self.input_names}: compile with "
                         f"constant_inputs={{name: value}} to specialize on their values")


class ModelError(TcompError):
    """A malformed model (fails onnx.checker, missing tensors, inconsistent shapes)."""


class InputError(TcompError):
    """A wrong input name, shape or dtype given to ``run``."""
