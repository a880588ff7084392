"""Readable text form of the loop IR (used by ``print``, errors and ``tcomp inspect``)."""
from __future__ import annotations

from .expr import BinOp, Call, Cast, Cmp, Expr, FloatImm, IntImm, Load, Select, Var
from .stmt import (Allocate, BlockRealize, BufferStore, Evaluate, For, IfThenElse, PrimFunc, SeqStmt, Stmt)

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "floormod": "%",
          "and": "&&", "or": "||", "xor": "^", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
          "eq": "==", "ne": "!="}


def expr_to_str(expr: Expr) -> str:
    if isinstance(expr, Var):
        return expr.name
    if isinstance(expr, IntImm):
        return str(bool(expr.value)) if expr.dtype == "bool" else str(expr.value)
    if isinstance(expr, FloatImm):
        return repr(expr.value) if expr.dtype == "float32" else f"{expr.dtype}({expr.value!r})"
    if isinstance(expr, (BinOp, Cmp)):
        if expr.op in _INFIX:
            return f"({expr_to_str(expr.a)} {_INFIX[expr.op]} {expr_to_str(expr.b)})"
        return f"{expr.op}({expr_to_str(expr.a)}, {expr_to_str(expr.b)})"
    if isinstance(expr, Select):
        return f"select({expr_to_str(expr.cond)}, {expr_to_str(expr.a)}, {expr_to_str(expr.b)})"
    if isinstance(expr, Cast):
        return f"{expr.dtype}({expr_to_str(expr.value)})"
    if isinstance(expr, Call) and expr.name == "address_of":
        return "&" + expr_to_str(expr.args[0])
    if isinstance(expr, Call):
        return f"{expr.name}({', '.join(expr_to_str(a) for a in expr.args)})"
    if isinstance(expr, Load):
        text = f"{expr.buffer.name}[{', '.join(expr_to_str(i) for i in expr.indices)}]"
        if expr.predicate is not None:
            text += f" if {expr_to_str(expr.predicate)} else 0"
            text = f"({text})"
        return text
    return repr(expr)


def _loop_header(loop: For) -> str:
    extent = expr_to_str(loop.extent)
    if loop.kind == "serial":
        rng = f"range({extent})"
    elif loop.kind == "thread_binding":
        rng = f"thread_binding({extent}, \"{loop.thread_tag}\")"
    else:
        rng = f"{loop.kind}({extent})"
    return f"for {loop.var.name} in {rng}:"


def _lines(stmt: Stmt, indent: int, out: list) -> None:
    pad = "  " * indent
    if isinstance(stmt, For):
        out.append(pad + _loop_header(stmt))
        _lines(stmt.body, indent + 1, out)
    elif isinstance(stmt, SeqStmt):
        for sub in stmt.stmts:
            _lines(sub, indent, out)
    elif isinstance(stmt, BlockRealize):
        blk = stmt.block
        iters = ", ".join(f"{iv.var.name} = {iv.kind}({expr_to_str(iv.extent)}): {expr_to_str(v)}"
                          for iv, v in zip(blk.iter_vars, stmt.iter_values))
        where = f" where {expr_to_str(stmt.predicate)}" if stmt.predicate is not None else ""
        out.append(f"{pad}block {blk.name}[{iters}]{where}:")
        if blk.init is not None:
            out.append(pad + "  init:")
            _lines(blk.init, indent + 2, out)
        _lines(blk.body, indent + 1, out)
    elif isinstance(stmt, BufferStore):
        target = f"{stmt.buffer.name}[{', '.join(expr_to_str(i) for i in stmt.indices)}]"
        guard = f"  if {expr_to_str(stmt.predicate)}" if stmt.predicate is not None else ""
        out.append(f"{pad}{target} = {expr_to_str(stmt.value)}{guard}")
    elif isinstance(stmt, IfThenElse):
        out.append(f"{pad}if {expr_to_str(stmt.cond)}:")
        _lines(stmt.then_body, indent + 1, out)
        if stmt.else_body is not None:
            out.append(pad + "else:")
            _lines(stmt.else_body, indent + 1, out)
    elif isinstance(stmt, Allocate):
        buf = stmt.buffer
        shape = ", ".join(expr_to_str(s) for s in buf.shape)
        strides = ""
        if buf.explicit_strides is not None:
            strides = f", strides=[{', '.join(expr_to_str(s) for s in buf.explicit_strides)}]"
        out.append(f"{pad}{buf.name} = alloc({buf.dtype}[{shape}]{strides}, scope=\"{buf.scope}\")")
        _lines(stmt.body, indent, out)
    elif isinstance(stmt, Evaluate):
        out.append(pad + expr_to_str(stmt.value))
    else:
        out.append(pad + repr(stmt))


def stmt_to_str(stmt: Stmt, indent: int = 0) -> str:
    out: list = []
    _lines(stmt, indent, out)
    return "\n".join(out)


def func_to_str(func: PrimFunc) -> str:
    params = ", ".join(f"{b.name}: {b.dtype}[{', '.join(expr_to_str(s) for s in b.shape)}]" for b in func.params)
    sizes = "".join(f", {v.name}: int64" for v in func.size_vars)
    header = f"def {func.name}({params}{sizes}):"
    attrs = "".join(f"\n  # {key}: {value}" for key, value in func.attrs.items())
    return header + attrs + "\n" + stmt_to_str(func.body, 1)
