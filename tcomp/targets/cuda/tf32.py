"""TF32 products, the cuda target's opt-in (``"cuda -tf32"``, like torch's ``allow_tf32``).

TF32 keeps fp32's 8-bit exponent and 10 of its 23 mantissa bits. With ``-tf32`` each fp32 matrix
product (matmul, the implicit GEMM of a conv) multiplies its operands rounded to TF32 (to nearest,
ties away from zero: ``cvt.rna.tf32.f32``, as cuBLAS and cuDNN round) and accumulates in fp32; what
the tensor cores' ``mma.sync .tf32`` computes. The rounding is written into the program, so the
tensor-core sketch matches it (``mma.py``'s tf32 intrinsics) and every other schedule of the product
(SIMT tiles, the tuner's candidates) computes the same values::

    C[i, j] = C[i, j] + A[i, k] * B[k, j]   ->   C[i, j] = C[i, j] + round_tf32(A[i, k]) * round_tf32(B[k, j])

Without ``-tf32`` (the default) products stay exact fp32. The option acts where tasks are made
(``tcomp.compile``, ``tcomp tune``: ``tuning.tasks.group_func``); ``tcomp.build`` builds a PrimFunc as given
(``tf32_products(func)`` writes the rounding into one), ``-tf32`` there picks the records. A rewritten task is
another workload (its key hashes the rounding), and its records are stored under the target ``"cuda -tf32"``
(``tuning.tasks.database_target``), so a tf32 record never serves an exact compile.
"""
from __future__ import annotations

from ...errors import TcompError
from ...tir.expr import BinOp, Call, Cast, Load
from ...tir.stmt import Block, BlockRealize, BufferStore, PrimFunc
from ...tir.transform import walk_stmts

OPTION = "-tf32"
ROUND = "round_tf32"  # the Call: an fp32 value rounded to TF32's 10-bit mantissa (still fp32)


def allows_tf32(target: str) -> bool:
    """Whether the target string opts into TF32 products (``"cuda -arch=sm_90 -tf32"``)."""
    words = target.split()
    if OPTION in words[1:] and words[0] != "cuda":
        raise TcompError(f"target {target!r}: {OPTION} is an option of the cuda target only")
    return OPTION in words[1:]


def round_tf32(value) -> Call:
    return Call(ROUND, (value,), "float32")


def is_rounded(expr) -> bool:
    """Whether ``expr`` is ``round_tf32(load)`` (a product operand under ``-tf32``)."""
    return isinstance(expr, Call) and expr.name == ROUND and isinstance(expr.args[0], Load)


def tf32_products(func: PrimFunc) -> PrimFunc:
    """A copy of ``func`` whose fp32 products (blocks ``C = C + x * y`` with a reduce iterator, ``x``
    and ``y`` fp32 loads of other buffers) multiply their operands rounded to TF32; ``func``
    itself where it has none."""
    from ...schedule.schedule import Schedule

    if not any(_operands(node.block) for node in walk_stmts(func.body) if isinstance(node, BlockRealize)):
        return func
    copy = Schedule(func).func
    for node in walk_stmts(copy.body):
        if isinstance(node, BlockRealize) and _operands(node.block):
            store = node.block.body
            x, y = _operands(node.block)
            store.value = BinOp("add", store.value.a, BinOp("mul", round_tf32(x), round_tf32(y)))
    return copy


def _operands(blk: Block) -> tuple | None:
    """(x, y), the loads of an fp32 product block ``C = C + x * y`` (no-op fp32 casts peeled), else None."""
    store = blk.body
    if not isinstance(store, BufferStore) or store.buffer.dtype != "float32" or \
            not any(iv.kind == "R" for iv in blk.iter_vars):
        return None
    value = store.value
    if not (isinstance(value, BinOp) and value.op == "add" and isinstance(value.a, Load)
            and value.a.buffer is store.buffer and isinstance(value.b, BinOp) and value.b.op == "mul"):
        return None
    operands = tuple(_peel(e) for e in (value.b.a, value.b.b))
    if not all(isinstance(e, Load) and e.dtype == "float32" and e.buffer is not store.buffer for e in operands):
        return None
    return operands


def _peel(expr):
    while isinstance(expr, Cast) and expr.dtype == "float32" and expr.value.dtype == "float32":
        expr = expr.value
    return expr
