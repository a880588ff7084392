"""Workload keys: one key per kernel structure, whatever its buffers and variables are named.

    workload_key(func)  ->  "3f1c...e2"   (sha256 of the printed function with names numbered
                                          by first appearance)

Two PrimFuncs with the same key compute the same thing with the same loop structure, so a
tuning record of one applies to the other (the layers of a transformer share keys).
"""
from __future__ import annotations

import hashlib
import re

from ..tir.stmt import PrimFunc

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KEYWORDS = {"def", "for", "in", "range", "block", "init", "where", "alloc", "scope", "if", "else", "select",
             "parallel", "vectorized", "unrolled", "thread_binding", "S", "R", "int64", "True", "False"}


def canonical_text(func: PrimFunc) -> str:
    """The printed function with every identifier that is not a keyword, dtype or call renamed
    ``n0, n1, ...`` in order of first appearance."""
    text = str(func)
    names: dict = {}

    def rename(match):
        word = match.group(0)
        if word in _KEYWORDS or word.startswith(("float", "int", "uint", "bool", "bfloat")) or \
                text[match.end():match.end() + 1] == "(":
            return word
        return names.setdefault(word, f"n{len(names)}")

    return _NAME.sub(rename, text)


def workload_key(func: PrimFunc) -> str:
    return hashlib.sha256(canonical_text(func).encode()).hexdigest()[:24]
