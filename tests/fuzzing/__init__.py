"""Differential fuzzing of tcomp against onnxruntime.

* ``case``: a generated graph as plain data (nodes, value specs, inputs, weights,
  literal constants), turned into an ONNX model plus inputs drawn from the specs,
  or rendered as Python code for a regression test;
* ``graph_gen``: ``generate(seed)``, random valid graphs over the supported ops, whose
  op generators live in ``gen_elementwise``, ``gen_tensor`` and ``gen_nn``;
* ``runner``: one case through onnxruntime and tcomp (isolated worker), classified;
* ``minimize``: delta debugging of a failing case.

Import with the tests directory on ``sys.path`` (``tests/conftest.py`` puts it there).
"""
