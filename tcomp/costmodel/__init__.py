"""Cost models: ``analytic.py`` (the default GEMM schedule's tile choice) and the learned models
of the auto-scheduler: ``features.py`` (loop-IR features), ``model.py`` (the ``CostModel``
interface, ``RandomModel``), ``xgb.py`` (``XGBModel``, ``load_pretrained``; the shipped model
is ``pretrained/cpu.json``, trained by ``benchmarks/costmodel_train.py``)."""
