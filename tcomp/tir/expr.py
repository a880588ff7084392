"""Expressions of the loop-nest IR.

Expressions are immutable trees. Leaves are constants, loop/iterator variables
(``Var``, compared by identity) and buffer loads; inner nodes are arithmetic
(``BinOp``), comparisons, ``Select``, ``Cast`` and named math calls::

    A[i, k] * B[k, j] + 1.0
    ->  BinOp("add", BinOp("mul", Load(A, (i, k)), Load(B, (k, j))), FloatImm(1.0))

Integer division is floor division (``//`` and ``%`` in Python), as in TVM.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)
INDEX_DTYPE = "int64"


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_unsigned(dtype: str) -> bool:
    return dtype.startswith("uint")


def dtype_bits(dtype: str) -> int:
    if dtype == "bool":
        return 8
    return int("".join(ch for ch in dtype if ch.isdigit()))


class Expr:
    """Base of all expressions; Python operators build IR nodes."""

    dtype: str

    def __add__(self, other):
        return BinOp("add", self, const_like(other, self))

    def __radd__(self, other):
        return BinOp("add", const_like(other, self), self)

    def __sub__(self, other):
        return BinOp("sub", self, const_like(other, self))

    def __rsub__(self, other):
        return BinOp("sub", const_like(other, self), self)

    def __mul__(self, other):
        return BinOp("mul", self, const_like(other, self))

    def __rmul__(self, other):
        return BinOp("mul", const_like(other, self), self)

    def __truediv__(self, other):
        return BinOp("div", self, const_like(other, self))

    def __rtruediv__(self, other):
        return BinOp("div", const_like(other, self), self)

    def __floordiv__(self, other):
        return BinOp("floordiv", self, const_like(other, self))

    def __rfloordiv__(self, other):
        return BinOp("floordiv", const_like(other, self), self)

    def __mod__(self, other):
        return BinOp("floormod", self, const_like(other, self))

    def __neg__(self):
        return BinOp("sub", const_like(0, self), self)

    def __lt__(self, other):
        return Cmp("lt", self, const_like(other, self))

    def __le__(self, other):
        return Cmp("le", self, const_like(other, self))

    def __gt__(self, other):
        return Cmp("gt", self, const_like(other, self))

    def __ge__(self, other):
        return Cmp("ge", self, const_like(other, self))

    def __and__(self, other):
        return BinOp("and", self, const_like(other, self))

    def __or__(self, other):
        return BinOp("or", self, const_like(other, self))

    def __str__(self):
        from .printer import expr_to_str

        return expr_to_str(self)


_var_ids = itertools.count()


class Var(Expr):
    """A named scalar variable (loop variable, block iterator or symbolic size).

    Variables compare by identity: two ``Var("i")`` are different variables.
    """

    __slots__ = ("name", "dtype", "uid")

    def __init__(self, name: str, dtype: str = INDEX_DTYPE):
        self.name = name
        self.dtype = dtype
        self.uid = next(_var_ids)

    def __repr__(self):
        return f"Var({self.name})"

    def __hash__(self):
        return hash(self.uid)

    def __eq__(self, other):
        return self is other


@dataclass(frozen=True, eq=True, repr=False)
class IntImm(Expr):
    value: int
    dtype: str = INDEX_DTYPE


@dataclass(frozen=True, eq=True, repr=False)
class FloatImm(Expr):
    value: float
    dtype: str = "float32"


BINARY_OPS = ("add", "sub", "mul", "div", "floordiv", "floormod", "min", "max", "pow", "and", "or", "xor",
              "shl", "shr")
COMPARE_OPS = ("lt", "le", "gt", "ge", "eq", "ne")
@dataclass(frozen=True, eq=True, repr=False)
class BinOp(Expr):
    op: str
    a: Expr
    b: Expr
    dtype: str = field(default="", compare=False)

    def __post_init__(self):
        if self.op not in BINARY_OPS:
            raise ValueError(f"unknown binary op {self.op}")
        if self.a.dtype != self.b.dtype:
            raise TypeError(f"{self.op}: operand dtypes differ ({self.a.dtype} vs {self.b.dtype})")
        object.__setattr__(self, "dtype", self.a.dtype)


@dataclass(frozen=True, eq=True, repr=False)
class Cmp(Expr):
    op: str
    a: Expr
    b: Expr
    dtype: str = field(default="bool", compare=False)

    def __post_init__(self):
        if self.op not in COMPARE_OPS:
            raise ValueError(f"unknown comparison {self.op}")
        if self.a.dtype != self.b.dtype:
            raise TypeError(f"{self.op}: operand dtypes differ ({self.a.dtype} vs {self.b.dtype})")


@dataclass(frozen=True, eq=True, repr=False)
class Select(Expr):
    """``cond ? a : b``; both sides are evaluated, so both must be safe to evaluate."""

    cond: Expr
    a: Expr
    b: Expr
    dtype: str = field(default="", compare=False)

    def __post_init__(self):
        if self.a.dtype != self.b.dtype:
            raise TypeError(f"select: branch dtypes differ ({self.a.dtype} vs {self.b.dtype})")
        object.__setattr__(self, "dtype", self.a.dtype)


@dataclass(frozen=True, eq=True, repr=False)
class Cast(Expr):
    dtype: str
    value: Expr


@dataclass(frozen=True, eq=True, repr=False)
class Call(Expr):
    """A named math function (exp, tanh, erf, sqrt, ...) or a tensor intrinsic call."""

    name: str
    args: tuple
    dtype: str


@dataclass(frozen=True, eq=True, repr=False)
class Load(Expr):
    """``buffer[indices]``; with a predicate, lanes where it is false read 0 and touch no memory."""

    buffer: "Buffer"
    indices: tuple
    predicate: Expr | None = None
    dtype: str = field(default="", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "dtype", self.buffer.dtype)
        if len(self.indices) != len(self.buffer.shape):
            raise IndexError(f"{self.buffer.name}: {len(self.indices)} indices for rank {len(self.buffer.shape)}")


class Buffer:
    """A multi-dimensional array in a memory scope ("global", "shared", "local").

    Shapes may hold ``Var`` extents (symbolic sizes). Buffers compare by identity.
    Elements are laid out row-major unless ``strides`` (in elements) are given: an allocated
    buffer may have padded strides (``storage_align``), so its storage spans more elements.
    """

    def __init__(self, name: str, shape, dtype: str, scope: str = "global", strides=None):
        if dtype not in ALL_DTYPES:
            raise TypeError(f"buffer {name}: unsupported dtype {dtype}")
        self.name = name
        self.shape = tuple(as_expr(s) for s in shape)
        self.dtype = dtype
        self.scope = scope
        self.explicit_strides = None if strides is None else tuple(as_expr(s) for s in strides)
        self.alignment = ()  # (axis, factor, offset) requests of storage_align, kept by compaction
        self.swizzled = False  # storage_swizzle: 16-byte chunks of each row XOR-permuted (``swizzle``)

    def __getitem__(self, indices):
        if not isinstance(indices, tuple):
            indices = (indices,)
        return Load(self, tuple(as_expr(i) for i in indices))

    def __repr__(self):
        return f"Buffer({self.name}, {self.dtype}{list(self.shape)}, {self.scope})"

    def strides(self) -> list[Expr]:
        """Strides in elements: the explicit ones, else row-major."""
        if self.explicit_strides is not None:
            return list(self.explicit_strides)
        strides = [IntImm(1)]
        for extent in reversed(self.shape[1:]):
            strides.insert(0, strides[0] * extent)
        return strides

    def offset(self, indices) -> Expr:
        """Row-major element offset of ``indices`` (unsimplified)."""
        flat: Expr = IntImm(0)
        for index, stride in zip(indices, self.strides()):
            flat = flat + index * stride
        return flat

    def swizzle(self) -> tuple | None:
        """``(bits, base, shift)`` of a swizzled buffer's storage (None: not swizzled): element
        offset ``o`` (after ``panels``, for rows longer than a 128-byte line) is stored at
        ``o ^ (((o >> (base + shift)) & (2**bits - 1)) << base)``. The bits above ``base`` that
        pick a 16-byte chunk of a 128-byte line are XORed with the line's index modulo 8, so the
        rows of an 8x16-byte access (ldmatrix) fall in distinct banks; on a 1024-byte aligned
        buffer this is the tensor cores' 128-byte swizzle (wgmma). Needs a power-of-two row of
        whole 16-byte chunks and no padded strides."""
        if not self.swizzled:
            return None
        base = {8: 4, 16: 3, 32: 2, 64: 1}.get(dtype_bits(self.dtype))
        row = self.shape[-1]
        if base is None or not isinstance(row, IntImm) or row.value & (row.value - 1) or row.value < 1 << base:
            raise ValueError(f"buffer {self.name}: cannot swizzle rows of {row} {self.dtype} elements "
                             f"(need a power of two of whole 16-byte chunks)")
        return 3, base, 3

    def panels(self) -> tuple | None:
        """``(line, rows, row)`` where a swizzled buffer's rows are longer than one 128-byte line
        of ``line`` elements: its last two axes (``rows`` x ``row``) are then stored as
        ``row / line`` panels of ``rows`` x ``line``, one after another (the layout wgmma reads a
        K x N operand in); offset ``o = q * row + c`` (``q`` counts rows over the leading axes)
        is placed at ``(q / rows) * rows * row + (c / line) * rows * line + (q % rows) * line +
        c % line`` before the XOR. None where rows fit a line."""
        if self.swizzle() is None:
            return None
        line = 1024 // dtype_bits(self.dtype)
        row = self.shape[-1].value
        rows = self.shape[-2]
        if row <= line:
            return None
        if not isinstance(rows, IntImm):
            raise ValueError(f"buffer {self.name}: cannot swizzle rows of {row} {self.dtype} elements in panels "
                             f"with a symbolic number of rows {rows}")
        return line, rows.value, row

    def swizzled_place(self, offset: int) -> int:
        """Where element ``offset`` of a swizzled buffer is stored (``panels`` then ``swizzle``)."""
        panels = self.panels()
        if panels is not None:
            line, rows, row = panels
            q, c = divmod(offset, row)
            offset = (q // rows) * rows * row + (c // line) * rows * line + (q % rows) * line + c % line
        bits, base, shift = self.swizzle()
        return offset ^ (((offset >> (base + shift)) & ((1 << bits) - 1)) << base)

    def num_elements(self) -> Expr:
        total: Expr = IntImm(1)
        for extent in self.shape:
            total = total * extent
        return total

    def storage_elements(self) -> Expr:
        """Elements the storage spans: ``num_elements()``, or more where strides are padded."""
        if self.explicit_strides is None:
            return self.num_elements()
        return self.offset([extent - 1 for extent in self.shape]) + 1


def as_expr(value, dtype: str | None = None) -> Expr:
    """Wraps Python numbers as immediates; passes expressions through."""
    if isinstance(value, Expr):
        return value
    if hasattr(value, "to_expr"):  # a symbolic size of the graph IR
        return value.to_expr()
    if isinstance(value, bool):
        return IntImm(int(value), "bool")
    if isinstance(value, int):
        return IntImm(value, dtype or INDEX_DTYPE)
    if isinstance(value, float):
        return FloatImm(value, dtype or "float32")
    raise TypeError(f"cannot convert {value!r} to an expression")


def const(value, dtype: str) -> Expr:
    if is_float(dtype):
        return FloatImm(float(value), dtype)
    if dtype == "bool":
        return IntImm(int(bool(value)), "bool")
    return IntImm(int(value), dtype)


def const_like(value, other: Expr) -> Expr:
    if isinstance(value, Expr):
        return value
    if hasattr(value, "to_expr"):  # a symbolic size of the graph IR
        return cast(other.dtype, value.to_expr())
    return const(value, other.dtype)


_size_vars: dict = {}


def size_var(name: str) -> Var:
    """The size variable of the graph's symbolic dimension ``name`` (one per name).

    Kernels that use it take its value as an argument (``PrimFunc.size_vars``).
    """
    if name not in _size_vars:
        _size_vars[name] = Var(name)
    return _size_vars[name]


def is_size_var(var) -> bool:
    return _size_vars.get(getattr(var, "name", None)) is var


def call(name: str, *args: Expr, dtype: str | None = None) -> Call:
    return Call(name, tuple(args), dtype or args[0].dtype)


def cast(dtype: str, value: Expr) -> Expr:
    return value if value.dtype == dtype else Cast(dtype, value)


def minimum(a: Expr, b) -> Expr:
    return BinOp("min", a, const_like(b, a))


def maximum(a: Expr, b) -> Expr:
    return BinOp("max", a, const_like(b, a))


def logical_and(*conds: Expr) -> Expr | None:
    """Conjunction of the given conditions, skipping ``None``; ``None`` if empty."""
    return _combine_conditions("and", conds)


def conjuncts(cond: Expr | None) -> list:
    """The conditions ``cond`` is the conjunction of (``logical_and``'s inverse): ``a and (b and c)``
    gives ``[a, b, c]``, ``None`` gives ``[]``."""
    if cond is None:
        return []
    if isinstance(cond, BinOp) and cond.op == "and":
        return conjuncts(cond.a) + conjuncts(cond.b)
    return [cond]


def logical_or(*conds: Expr) -> Expr | None:
    """Disjunction of the given conditions, skipping ``None``; ``None`` if empty."""
    return _combine_conditions("or", conds)


def _combine_conditions(op: str, conds) -> Expr | None:
    result = None
    for cond in conds:
        if cond is not None:
            result = cond if result is None else BinOp(op, result, cond)
    return result


def children(expr: Expr) -> tuple:
    """Direct sub-expressions of ``expr`` (predicates of loads included)."""
    if isinstance(expr, (BinOp, Cmp)):
        return (expr.a, expr.b)
    if isinstance(expr, Select):
        return (expr.cond, expr.a, expr.b)
    if isinstance(expr, Cast):
        return (expr.value,)
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, Load):
        return expr.indices + ((expr.predicate,) if expr.predicate is not None else ())
    return ()


def walk(expr: Expr):
    """Yields every node of the expression tree, parents first."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(children(node))


def free_vars(expr: Expr) -> set:
    found, seen, stack = set(), set(), [expr]  # a node shared by several parents is visited once
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            if isinstance(node, Var):
                found.add(node)
            stack.extend(children(node))
    return found


def substitute(expr: Expr, mapping: dict) -> Expr:
    """Replaces variables (keys) with expressions (values)."""
    if not mapping:
        return expr
    cache: dict = {}

    def visit(node):
        key = id(node)
        if key in cache:
            return cache[key]
        if isinstance(node, Var):
            result = mapping.get(node, node)
        elif isinstance(node, BinOp):
            result = BinOp(node.op, visit(node.a), visit(node.b))
        elif isinstance(node, Cmp):
            result = Cmp(node.op, visit(node.a), visit(node.b))
        elif isinstance(node, Select):
            result = Select(visit(node.cond), visit(node.a), visit(node.b))
        elif isinstance(node, Cast):
            result = Cast(node.dtype, visit(node.value))
        elif isinstance(node, Call):
            result = Call(node.name, tuple(visit(a) for a in node.args), node.dtype)
        elif isinstance(node, Load):
            pred = visit(node.predicate) if node.predicate is not None else None
            result = Load(node.buffer, tuple(visit(i) for i in node.indices), pred)
        else:
            result = node
        cache[key] = result
        return result

    return visit(expr)


def rewrite(expr: Expr, replace) -> Expr:
    """``expr`` with every node for which ``replace(node)`` returns an expression replaced by it;
    the nodes it leaves alone (None) are rebuilt from their rewritten children::

        rewrite(A[i] + B[i], lambda e: C[e.indices] if isinstance(e, Load) and e.buffer is A else None)
        ->  C[i] + B[i]
    """
    replaced = replace(expr)
    if replaced is not None:
        return replaced

    def go(e):
        return rewrite(e, replace)

    if isinstance(expr, BinOp):
        return BinOp(expr.op, go(expr.a), go(expr.b))
    if isinstance(expr, Cmp):
        return Cmp(expr.op, go(expr.a), go(expr.b))
    if isinstance(expr, Select):
        return Select(go(expr.cond), go(expr.a), go(expr.b))
    if isinstance(expr, Cast):
        return Cast(expr.dtype, go(expr.value))
    if isinstance(expr, Call):
        return Call(expr.name, tuple(go(a) for a in expr.args), expr.dtype)
    if isinstance(expr, Load):
        pred = go(expr.predicate) if expr.predicate is not None else None
        return Load(expr.buffer, tuple(go(i) for i in expr.indices), pred)
    return expr
