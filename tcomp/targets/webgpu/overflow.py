"""64-bit integers computed in 32 bits (WGSL has no i64): when a result leaves the 32-bit range.

A shader computes int64 (uint64) values as i32 (u32). Uploads refuse inputs beyond 32 bits and
stores write the 64-bit sign (zero) extension, so values in memory are exact; what can still go
wrong is arithmetic whose 64-bit result does not fit 32 bits (``a * b``, ``pow``, a sum) or a
conversion to a 64-bit type of a value beyond 32 bits (a float, a uint32). Such a node is checked
where it reads memory and ``arith.bound`` cannot confine it to 32 bits (index arithmetic over loop
extents is left alone). ``flag`` follows a statement's expressions as a boolean shadow of them: a
node's flag is its own check or its operands' flags, a ``Select``'s is the flag of the side it
selects (WGSL evaluates both: a branch not taken may overflow harmlessly). The renderer raises the
kernel's status word where the flag holds, before the statement::

    y[i] = x[i] * 3        (int64)
    ->  let tc_cse = x[2 * (i)];
        if (tc_mul_overflows_i32(tc_cse, 3)) { atomicOr(&tc_status[0], 1u); }
        ... y[2 * i] = (tc_cse * 3) ...

The runtime reads the status after the dispatches and refuses the run, naming the kernel, instead
of returning results that wrapped at 32 bits (``device.py``; ``web/tcomp.js`` in a browser).
"""
from __future__ import annotations

from ...tir import arith
from ...tir.expr import (BinOp, Call, Cast, Expr, IntImm, Load, Select, Var, children, is_float, is_unsigned,
                         logical_or, rewrite)

WIDE = ("int64", "uint64")
INT32_MIN = "i32(-2147483648)"
CHECK = "tc_overflows"  # Call(CHECK, (node,), "bool"): ``condition`` of the node (the renderer's)

HELPERS = r"""
fn tc_mul_overflows_i32(a: i32, b: i32) -> bool {  // a * b leaves the 32-bit range
  if (a == 0) { return false; }
  if (a == -1) { return b == i32(-2147483648); }
  return (a * b) / a != b;
}
fn tc_mul_overflows_u32(a: u32, b: u32) -> bool { return a != 0u && (a * b) / a != b; }
fn tc_pow_overflows_i32(a: i32, b: i32) -> bool {  // a ** b does (b < 0: 0 or +-1, as tc_pow_i32 gives)
  if (a == 0 || a == 1 || a == -1) { return false; }
  var r = a;  // |a ** e| at least doubles with e: one of the first 32 powers leaves the range
  for (var e = 1; e < b; e = e + 1) {
    if (tc_mul_overflows_i32(r, a)) { return true; }
    r = r * a;
  }
  return false;
}
fn tc_pow_overflows_u32(a: u32, b: u32) -> bool {
  if (a < 2u) { return false; }
  var r = a;
  for (var e = 1u; e < b; e = e + 1u) {
    if (tc_mul_overflows_u32(r, a)) { return true; }
    r = r * a;
  }
  return false;
}
fn tc_shl_overflows_i32(a: i32, b: i32) -> bool {
  return a != 0 && (b < 0 || b > 30 || ((a << u32(b)) >> u32(b)) != a);
}
fn tc_shl_overflows_u32(a: u32, b: u32) -> bool { return a != 0u && (b > 31u || ((a << b) >> b) != a); }
"""


class Flags:
    """The overflow flags of one statement's expressions: ``of(e)`` is a bool expression, whether a
    checked node that ``e``'s value depends on left 32 bits (None: no such node). ``index(load)`` is
    the offset the renderer computes for a load; a node shared by several expressions is flagged once."""

    def __init__(self, bounds: dict, index):
        self.bounds, self.index = bounds, index
        self._memo: dict = {}   # id -> (node, flag): the node kept alive, its id its own
        self._reads: dict = {}  # id -> whether the node reads memory

    def of(self, e: Expr) -> Expr | None:
        found = self._memo.get(id(e))
        if found is not None:
            return found[1]
        if isinstance(e, Select):
            a, b = self.of(e.a), self.of(e.b)
            chosen = None if a is None and b is None else \
                Select(e.cond, IntImm(0, "bool") if a is None else a, IntImm(0, "bool") if b is None else b)
            flag = logical_or(self.of(e.cond), chosen)
        else:
            operands = children(e)
            if isinstance(e, Load):
                operands = (self.index(e),) + ((e.predicate,) if e.predicate is not None else ())
            checked = may_overflow(e, self.bounds, self._reads) and condition(e, str) is not None
            own = Call(CHECK, (e,), "bool") if checked else None
            flag = logical_or(*[self.of(o) for o in operands], own)
        self._memo[id(e)] = (e, flag)
        return flag


def may_overflow(e: Expr, bounds: dict, reads: dict) -> bool:
    """Whether ``e``, a 64-bit node, may compute a value its 32-bit registers do not hold: it depends
    on memory (``reads``: id -> whether a node reads memory, filled as computed) and its bounds are
    not within 32 bits. A 64-bit value read from memory is within 32 bits (uploads check inputs,
    these checks the kernels' results)."""
    if e.dtype not in WIDE or not isinstance(e, (BinOp, Call, Cast)) or not _reads(e, reads):
        return False
    held: dict = {}  # id of a 64-bit load -> a variable standing for its value

    def stand_in(node: Expr):
        if isinstance(node, Load) and node.dtype in WIDE:
            return held.setdefault(id(node), Var(node.buffer.name, node.dtype))
        return None

    value = rewrite(e, stand_in)
    lo, hi = arith.bound(value, {**bounds, **{var: _range(var.dtype) for var in held.values()}})
    low, high = _range(e.dtype)
    return lo is None or hi is None or lo < low or hi > high


def _range(dtype: str) -> tuple:
    return (0, 2**32 - 1) if is_unsigned(dtype) else (-2**31, 2**31 - 1)


def _reads(e: Expr, reads: dict) -> bool:
    found = reads.get(id(e))
    if found is None:
        found = reads[id(e)] = isinstance(e, Load) or any(_reads(c, reads) for c in children(e))
    return found


def condition(e: Expr, text) -> str | None:
    """WGSL text of the condition under which ``e``'s 32-bit result differs from its 64-bit one
    (``text(x)``: the text of operand ``x``), or None where it never does."""
    unsigned = is_unsigned(e.dtype)
    suffix = "u32" if unsigned else "i32"
    if isinstance(e, Cast):
        source = e.value.dtype
        if is_float(source):
            return (f"({text(e.value)} <= -1.0f || {text(e.value)} >= 4294967296.0f)" if unsigned
                    else f"(abs({text(e.value)}) >= 2147483648.0f)")
        if unsigned and not is_unsigned(source) and source != "bool":
            return f"({text(e.value)} < 0)"
        if not unsigned and source in ("uint32", "uint64"):
            return f"({text(e.value)} > 0x7fffffffu)"
        return None
    if isinstance(e, Call):
        if e.name in ("neg", "abs") and not unsigned:
            return f"({text(e.args[0])} == {INT32_MIN})"
        return None
    a, b = e.a, e.b
    if e.op == "add":
        return f"({text(e)} < {text(a)})" if unsigned else f"((({text(a)} ^ {text(e)}) & ({text(b)} ^ {text(e)})) < 0)"
    if e.op == "sub":
        return f"({text(a)} < {text(b)})" if unsigned else f"((({text(a)} ^ {text(b)}) & ({text(a)} ^ {text(e)})) < 0)"
    if e.op in ("mul", "pow", "shl"):
        return f"tc_{e.op}_overflows_{suffix}({text(a)}, {text(b)})"
    if e.op in ("div", "floordiv") and not unsigned:
        return f"({text(a)} == {INT32_MIN} && {text(b)} == -1)"
    return None
