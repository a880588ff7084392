"""tcomp behind the ONNX backend API (``onnx.backend.base``), as ONNX's backend tests expect.

    import tcomp.backend
    rep = tcomp.backend.prepare(model, "CPU")        # compiles (or defers, see below)
    outputs = rep.run([x, y])                        # tuple, in graph-output order

    onnx.backend.test.BackendTest(tcomp.backend.TcompBackend, __name__)

``prepare`` compiles the model when every input has a static shape. A ``TcompRep``
then specializes on what each run brings, like ``torch.compile``'s guards:

- inputs with symbolic or unknown dimensions take their shapes from the run's arrays;
- inputs that the model uses as compile-time operands (a Reshape's shape, reduction
  axes, Slice bounds, Pad pads ... computed from a graph input; the compiler reports
  them with ``tcomp.ShapeOperandError``) are frozen to the run's values with
  ``tcomp.compile(..., constant_inputs=...)``.

Compiled modules are cached by the run's input shapes and dtypes and the frozen
inputs' values; a run that matches an earlier one reuses its module.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from .compiler import compile as tcomp_compile
from .errors import InputError, ShapeOperandError, TcompError
from .frontend.onnx_importer import load_model

CACHE_SIZE = 16  # compiled specializations kept per prepared model (least recently used dropped first)


def _is_static(info: onnx.ValueInfoProto) -> bool:
    tensor = info.type.tensor_type
    return (info.type.HasField("tensor_type") and tensor.HasField("shape")
            and all(d.HasField("dim_value") and d.dim_value > 0 for d in tensor.shape.dim))


class TcompRep(BackendRep):
    """A prepared model: ``run(inputs)`` compiles the specialization the inputs need, once, and runs it."""

    def __init__(self, model: onnx.ModelProto, target: str = "cpu", num_threads: int | None = None):
        self.model = model
        self.target = target
        self.num_threads = num_threads
        initializers = {init.name for init in model.graph.initializer}
        self.inputs = [info for info in model.graph.input if info.name not in initializers]
        self.input_names = [info.name for info in self.inputs]
        self._static = {info.name for info in self.inputs if _is_static(info)}
        self.frozen: set = set()  # inputs found to be compile-time operands
        self._cache: OrderedDict = OrderedDict()
        if len(self._static) == len(self.inputs):
            declared = {info.name: np.empty([d.dim_value for d in info.type.tensor_type.shape.dim],
                                            onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type))
                        for info in self.inputs}
            try:
                self._compile(declared)
            except ShapeOperandError as exc:  # compiled at the first run, on its values
                self.frozen.update(exc.input_names)

    def run(self, inputs, **kwargs) -> tuple:
        """Runs on ``inputs`` (arrays in graph-input order, or a dict by name); outputs as a tuple."""
        feeds = self._feeds(inputs)
        module = self._module_for(feeds)
        return tuple(module.run({name: feeds[name] for name in module.input_names}))

    def _feeds(self, inputs) -> dict:
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(inputs) != len(self.input_names):
                raise InputError(f"expected {len(self.input_names)} inputs {self.input_names}, got {len(inputs)}")
            feeds = dict(zip(self.input_names, inputs))
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise InputError(f"missing input(s) {missing}; the model's inputs are {self.input_names}")
        # sequences (lists) and absent optionals (None) stay as they are: the compiler refuses them
        return {name: value if value is None or isinstance(value, list) else np.asarray(value)
                for name, value in feeds.items()}

    def _key(self, feeds: dict) -> tuple:
        arrays = {name: value for name, value in feeds.items() if isinstance(value, np.ndarray)}
        return tuple((name, arrays[name].dtype.name, arrays[name].shape,
                      arrays[name].tobytes() if name in self.frozen else None) if name in arrays
                     else (name, type(feeds[name]).__name__) for name in self.input_names)

    def _module_for(self, feeds: dict):
        while True:
            key = self._key(feeds)
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            try:
                return self._compile(feeds)
            except ShapeOperandError as exc:
                new = set(exc.input_names) - self.frozen
                if not new:
                    raise
                self.frozen.update(new)

    def _compile(self, feeds: dict):
        """Compiles for the shapes of ``feeds`` and the values of its frozen inputs; caches the module."""
        shapes = {name: feeds[name].shape for name in self.input_names
                  if name not in self._static and name not in self.frozen and isinstance(feeds[name], np.ndarray)}
        constants = {name: feeds[name] for name in self.frozen}
        module = tcomp_compile(self.model, target=self.target, input_shapes=shapes or None,
                               num_threads=self.num_threads, constant_inputs=constants or None)
        self._cache[self._key(feeds)] = module
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return module


class TcompBackend(Backend):
    """``onnx.backend.base.Backend`` for tcomp; the device ``CPU`` is the ``cpu`` target, ``CUDA`` the
    ``cuda`` target (device 0; outputs come back as numpy arrays)."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        try:
            return Device(device).type in (DeviceType.CPU, DeviceType.CUDA)
        except (ValueError, KeyError, AttributeError):  # AttributeError: a device type onnx does not know
            return False

    @classmethod
    def is_compatible(cls, model, device: str = "CPU", **kwargs) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model, device: str = "CPU", **kwargs) -> TcompRep:
        """Checks and compiles ``model`` (a ModelProto or a path); ``num_threads`` may be given."""
        if not cls.supports_device(device):
            raise TcompError(f"device {device!r} is not supported; tcomp.backend runs on 'CPU' and 'CUDA'")
        target = "cuda" if Device(device).type == DeviceType.CUDA else "cpu"
        return TcompRep(load_model(model), target, kwargs.get("num_threads"))

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs) -> tuple:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs, device: str = "CPU", outputs_info=None, **kwargs) -> tuple:
        """Runs one node on ``inputs`` (arrays, in the node's input order) as a one-node model."""
        arrays = [np.asarray(a) for a in (inputs.values() if isinstance(inputs, dict) else inputs)]
        names = [n for n in node.input if n]
        graph = onnx.helper.make_graph(
            [node], f"{node.op_type}_node",
            [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
             for n, a in zip(names, arrays)],
            [onnx.helper.make_empty_tensor_value_info(n) for n in node.output if n])
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(node.domain, opset)])
        typed = onnx.shape_inference.infer_shapes(model).graph.output  # the checker wants typed outputs
        del model.graph.output[:]
        model.graph.output.extend(typed)
        return cls.run_model(model, arrays, device, **kwargs)


prepare = TcompBackend.prepare
run_model = TcompBackend.run_model
run_node = TcompBackend.run_node
supports_device = TcompBackend.supports_device
