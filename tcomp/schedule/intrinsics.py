"""The registry of tensor intrinsics: what a hardware instruction computes, and how each target emits it.

A ``TensorIntrinsic`` is data. Its *description* is a tiny ``PrimFunc`` written with the
compute-definition language; it fixes the extents, dtypes and layouts of the computation
the instruction performs. For AVX-512 VNNI (``dot_16x4_vnni``)::

    A = tir.placeholder((4,), "uint8", name="A")
    B = tir.placeholder((16, 4), "int8", name="B")
    k = tir.reduce_axis(4, name="k")
    C = tir.compute((16,), lambda i: tir.sum(cast("int32", A[k]) * cast("int32", B[i, k]), axis=k), name="C")
    description = tir.create_func([A, B, C])

Its *implementations* map a target kind ("cpu", later "cuda", ...) to an object that the
target's code generator knows how to emit (for the CPU: an LLVM intrinsic and its operand
layout, see ``targets/cpu/intrinsics.py``; for CUDA: WMMA as inline PTX, see
``targets/cuda/intrinsics.py``). The registry never looks inside an
implementation, so a CUDA WMMA snippet, an AMX tile sequence or an ARM ``sdot`` joins it
the same way: ``register_intrinsic(name, description, {"cuda": ...})`` or
``register_implementation(name, "cuda", ...)`` for a description already registered.

The description's update statement is what the instruction computes (``C[i] = C[i] + ...``,
i.e. it accumulates); the init a reduction gets from ``create_func`` is not part of it.
``Schedule.tensorize`` matches a block against the description and replaces its body with
a call of the intrinsic (``primitives/tensorize.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import TcompError
from ..tir.expr import Call, IntImm
from ..tir.stmt import BlockRealize, BufferStore, Evaluate, For, PrimFunc


class IntrinsicError(TcompError):
    """A malformed intrinsic description, or a name the registry does not know."""


@dataclass(frozen=True)
class TensorIntrinsic:
    """A named computation (``description``) and its per-target ``implementations``.

    With ``strided_rows`` the rows of each tile (its second-to-last axis) may lie any distance
    apart in memory (the instruction takes a row stride, like WMMA's leading dimension); else
    each tile must be laid out compactly, as in the description."""

    name: str
    description: PrimFunc
    implementations: dict = field(default_factory=dict)
    strided_rows: bool = False

    def __post_init__(self):
        if not isinstance(self.description, PrimFunc):
            raise IntrinsicError(f"intrinsic {self.name}: the description must be a PrimFunc (tir.create_func)")
        description_nest(self)  # checks the shape of the description

    def implementation(self, target: str):
        """The implementation for ``target``; an error naming the targets that have one."""
        if target not in self.implementations:
            known = ", ".join(sorted(self.implementations)) or "none"
            raise IntrinsicError(f"intrinsic {self.name} has no implementation for {target} (it has: {known})")
        return self.implementations[target]

    def __str__(self):
        targets = ", ".join(sorted(self.implementations)) or "no target"
        return f"{self.name} ({targets}):\n{self.description}"


@dataclass(frozen=True)
class DescriptionNest:
    """The parts of a description: its loops (outermost first), its block, its update statement."""

    loops: tuple
    realize: BlockRealize
    update: BufferStore


def description_nest(intrinsic: TensorIntrinsic) -> DescriptionNest:
    """Checks that the description is one perfect loop nest of constant extents around one block whose
    body is a single store, and returns its parts."""
    name = intrinsic.name
    loops, node = [], intrinsic.description.body
    while isinstance(node, For):
        if not isinstance(node.extent, IntImm):
            raise IntrinsicError(f"intrinsic {name}: loop {node.var.name} of the description needs a constant extent")
        loops.append(node)
        node = node.body
    if not isinstance(node, BlockRealize):
        raise IntrinsicError(f"intrinsic {name}: the description must be one loop nest around one block "
                             f"(one compute over placeholders), found {type(node).__name__}")
    if not isinstance(node.block.body, BufferStore):
        raise IntrinsicError(f"intrinsic {name}: the description's block must hold one store")
    return DescriptionNest(tuple(loops), node, node.block.body)


_REGISTRY: dict = {}


def register_intrinsic(name: str, description: PrimFunc, implementations: dict | None = None,
                       strided_rows: bool = False) -> TensorIntrinsic:
    """Adds an intrinsic; a name registered already is an error (add targets with ``register_implementation``)."""
    if name in _REGISTRY:
        raise IntrinsicError(f"intrinsic {name} is registered already")
    intrinsic = TensorIntrinsic(name, description, dict(implementations or {}), strided_rows)
    _REGISTRY[name] = intrinsic
    return intrinsic


def register_implementation(name: str, target: str, implementation) -> None:
    """Adds (or replaces) ``name``'s implementation for ``target``."""
    get_intrinsic(name).implementations[target] = implementation


def get_intrinsic(name: str) -> TensorIntrinsic:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise IntrinsicError(f"no tensor intrinsic named {name!r} (registered: {known})") from None


def list_intrinsics(target: str | None = None) -> list:
    """Names of the registered intrinsics, sorted; with ``target``, those implemented for it."""
    return sorted(name for name, intrinsic in _REGISTRY.items()
                  if target is None or target in intrinsic.implementations)


INTRINSIC_CALL_DTYPE = "void"


def intrinsic_call(intrinsic: TensorIntrinsic, starts) -> Evaluate:
    """The statement calling ``intrinsic`` on tiles starting at ``starts`` (one Load per description
    parameter, in order); printed as ``name(&A[...], &B[...], &C[...])``."""
    args = tuple(Call("address_of", (start,), "int64") for start in starts)
    return Evaluate(Call(intrinsic.name, args, INTRINSIC_CALL_DTYPE))


def is_intrinsic_call(expr) -> bool:
    return isinstance(expr, Call) and expr.dtype == INTRINSIC_CALL_DTYPE and expr.name in _REGISTRY


def tile_starts(call: Call) -> list:
    """The Loads whose addresses an intrinsic call passes."""
    return [arg.args[0] for arg in call.args]
