"""The host CPU target: LLVM code generation and JIT."""
