"""Loop-nest IR: expressions, statements, simplifier, printer, tensor views."""
