"""Cost-model data: the candidates the search and the predicted compile rank, measured.

    python benchmarks/costmodel_data.py prepare [--dir costmodel_data] [--models-dir DIR] [--previous DIR]
    # on an idle machine: 7 processes of 2 cores each, every kernel pinned like the 2-core target
    for i in 0 1 2 3 4 5 6; do taskset -c $((2*i)),$((2*i+1)) python benchmarks/costmodel_data.py \\
        measure --dir costmodel_data --shard $i/7 --out costmodel_data/measured_$i.jsonl & done; wait
    python benchmarks/costmodel_data.py refresh --dir costmodel_data   # after a change to the IR classes
    python benchmarks/costmodel_train.py --dir costmodel_data     # trains on the "train" kernels
    python benchmarks/costmodel_eval.py --dir costmodel_data      # ranks the "heldout" kernels
    # GPU targets: the measurements are tuning runs' records (on the GPU machine)
    tcomp tune bert.onnx --target cuda --minutes 3 --db gpu.db   # ... and other models, same db
    python benchmarks/costmodel_data.py from-db --dir gpu_data --db gpu.db --models bert.onnx ... --target cuda
    python benchmarks/costmodel_train.py --dir gpu_data --out tcomp/costmodel/pretrained/cuda.json

Kernels, each in one split:

* model tasks (``tuning/tasks.py``: matmul, conv, window, reduce, norm tasks) of the model zoo
  (tests/model_zoo.py, full size) with at least ``predicted.MIN_WORK`` iterations, i.e. the
  kernels the predicted compile decides, each with its template kernel: ResNet-18, BERT-base,
  GPT-2 and every other task of MobileNetV2 train; ViT-tiny and the remaining MobileNetV2 tasks
  are held out (a held-out workload that also occurs in training is dropped);
* one-op ONNX models of the window, reduce and norm tasks at other shapes (``TRAIN_OPS`` train,
  ``HELD_OUT_OPS`` held out; with templates): max/average pooling, depthwise and grouped convs,
  softmax, layer norm, reductions: above ``MIN_WORK`` the zoo has few of these kinds;
* compute definitions written with ``tcomp.tir`` (``TRAIN_KERNELS`` train, ``HELD_OUT``
  held out): matmuls, batch matmul, conv2d, reductions, elementwise.

``--previous DIR`` (repeatable) prepares only what is not in an earlier prepared directory (by
workload): the earlier kernels keep their split, so a held-out kernel of the earlier data never
trains, and the MobileNetV2 tasks that are new alternate between the splits. The datasets of
``costmodel_train.py`` and ``costmodel_eval.py`` then take both directories (``--dir A --dir B``).

Candidates of a kernel: ``--random`` random samples of its design space (``space.design_space``,
a random sketch with random decisions), the ``--predicted`` best candidates of the evolution that
the predicted compile runs (held-out kernels: ``--heldout-random``, ``--heldout-predicted``) (``predicted.ranked_candidates``, the shipped model at the time of
``prepare``), and its template. ``prepare`` writes ``kernels.pickle`` (the functions and
templates: a transport to the measuring machine, which need not have torch or the model files,
like the measuring worker's pickled messages; regenerated, never kept in the repository) and
``candidates.jsonl`` (kernel, origin, trace JSON). ``measure`` measures a shard of the kernels
with ``tuning.measure.Measurer`` (checked against the unscheduled function, median of 5 runs,
``--threads`` threads), the template and the first half of every kernel's candidates first,
and measures nothing more after ``--deadline`` seconds; a line per candidate, written as measured.
``--split train`` / ``--kernels A B ...`` measure only those kernels (e.g. more training data).
"""
from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from tcomp import tir  # noqa: E402
from tcomp.schedule.trace import Trace  # noqa: E402
from tcomp.tir import expr as te  # noqa: E402

TRAIN_MODELS = ("resnet18", "bert", "gpt2")
HELD_OUT_MODELS = ("vit_tiny",)
SPLIT_MODELS = ("mobilenetv2",)      # every other task (by workload key) trains, the rest are held out


# ---------------------------------------------------------------- compute definitions
def matmul(m, n, k):
    a = tir.placeholder((m, k), "float32", name="A")
    b = tir.placeholder((k, n), "float32", name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((m, n), lambda i, j: tir.sum(a[i, r] * b[r, j], axis=r), name="C")
    return tir.create_func([a, b, c])


def batch_matmul(bs, m, n, k):
    a = tir.placeholder((bs, m, k), "float32", name="A")
    b = tir.placeholder((bs, k, n), "float32", name="B")
    r = tir.reduce_axis(k, name="k")
    c = tir.compute((bs, m, n), lambda q, i, j: tir.sum(a[q, i, r] * b[q, r, j], axis=r), name="C")
    return tir.create_func([a, b, c])


def conv2d(c_in, hw, c_out, ksize):
    """NCHW conv (batch 1, stride 1, 'same' padding) with an explicit padding stage."""
    pad = ksize // 2
    x = tir.placeholder((c_in, hw, hw), "float32", name="X")
    w = tir.placeholder((c_out, c_in, ksize, ksize), "float32", name="W")
    zero = te.const(0.0, "float32")

    def clamp(e):
        return te.minimum(te.maximum(e - pad, 0), hw - 1)

    def inside(e):
        return te.BinOp("and", e >= pad, e < hw + pad)

    xp = tir.compute((c_in, hw + 2 * pad, hw + 2 * pad), lambda c, h, v: te.Select(
        te.BinOp("and", inside(h), inside(v)), x[c, clamp(h), clamp(v)], zero), name="Xp") if pad else None
    src = xp if xp is not None else x
    rc, rh, rw = tir.reduce_axis(c_in, "rc"), tir.reduce_axis(ksize, "rh"), tir.reduce_axis(ksize, "rw")
    y = tir.compute((c_out, hw, hw), lambda o, h, v: tir.sum(src[rc, h + rh, v + rw] * w[o, rc, rh, rw],
                                                             axis=[rc, rh, rw]), name="Y")
    return tir.create_func([x, w, y])


def row_reduce(m, n, combiner="sum"):
    a = tir.placeholder((m, n), "float32", name="A")
    r = tir.reduce_axis(n, name="r")
    b = tir.compute((m,), lambda i: getattr(tir, combiner)(a[i, r], axis=r), name="B")
    return tir.create_func([a, b])


def col_reduce(m, n):
    a = tir.placeholder((m, n), "float32", name="A")
    r = tir.reduce_axis(m, name="r")
    b = tir.compute((n,), lambda j: tir.sum(a[r, j], axis=r), name="B")
    return tir.create_func([a, b])


def elementwise(m, n, kind="exp_add"):
    a = tir.placeholder((m, n), "float32", name="A")
    b = tir.placeholder((m, n), "float32", name="B")
    if kind == "exp_add":
        c = tir.compute((m, n), lambda i, j: te.call("exp", a[i, j]) + b[i, j], name="C")
    elif kind == "transpose_add":
        c = tir.compute((m, n), lambda i, j: a[j, i] * 2.0 + b[i, j], name="C")
    else:  # relu(a) * b + a, two stages
        t = tir.compute((m, n), lambda i, j: te.maximum(a[i, j], 0.0), name="T")
        c = tir.compute((m, n), lambda i, j: t[i, j] * b[i, j] + a[i, j], name="C")
    return tir.create_func([a, b, c])


def tanh_gelu(m, n):
    a = tir.placeholder((m, n), "float32", name="X")
    c = tir.compute((m, n), lambda i, j: a[i, j] * (te.call("tanh", a[i, j] * 0.79788) + 1.0) * 0.5, name="Y")
    return tir.create_func([a, c])


TRAIN_KERNELS = {
    "matmul_256": lambda: matmul(256, 256, 256),
    "matmul_128x512x256": lambda: matmul(128, 512, 256),
    "matmul_512x128x128": lambda: matmul(512, 128, 128),
    "matmul_64x1024x64": lambda: matmul(64, 1024, 64),
    "matmul_384x384x64": lambda: matmul(384, 384, 64),
    "bmm_8x128x128x64": lambda: batch_matmul(8, 128, 128, 64),
    "conv2d_32x28x64_3": lambda: conv2d(32, 28, 64, 3),
    "conv2d_64x14x64_1": lambda: conv2d(64, 14, 64, 1),
    "rowsum_1024": lambda: row_reduce(1024, 1024),
    "rowmax_256x4096": lambda: row_reduce(256, 4096, "max"),
    "colsum_1024": lambda: col_reduce(1024, 1024),
    "exp_add_1024": lambda: elementwise(1024, 1024, "exp_add"),
    "transpose_add_512": lambda: elementwise(512, 512, "transpose_add"),
    "relu_mul_add_768": lambda: elementwise(768, 768, "relu_mul_add"),
}

HELD_OUT = {
    "matmul_320x192x256": lambda: matmul(320, 192, 256),
    "matmul_96x768x512": lambda: matmul(96, 768, 512),
    "bmm_4x96x192x128": lambda: batch_matmul(4, 96, 192, 128),
    "conv2d_16x56x32_3": lambda: conv2d(16, 56, 32, 3),
    "colsum_2048x512": lambda: col_reduce(2048, 512),
    "tanh_gelu_640x1024": lambda: tanh_gelu(640, 1024),
}
assert not set(HELD_OUT) & set(TRAIN_KERNELS)


# ---------------------------------------------------------------- one-op models of the window, reduce, norm tasks
def one_op(op, x_shape, attrs=None, weight=None, axes=None, opset=17):
    """A one-node ONNX model of ``op`` on X (``weight``: the shape of a constant conv weight W,
    ``axes``: a constant axes input): its task is extracted as a model's would be."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    inits, inputs = [], ["X"]
    if weight is not None:
        inits.append(numpy_helper.from_array(np.random.default_rng(0).standard_normal(weight).astype(np.float32), "W"))
        inputs.append("W")
    if op == "LayerNormalization":
        for name in ("scale", "bias"):
            inits.append(numpy_helper.from_array(np.ones(x_shape[-1:], np.float32), name))
            inputs.append(name)
    if axes is not None:
        inits.append(numpy_helper.from_array(np.asarray(axes, np.int64), "axes"))
        inputs.append("axes")
    graph = helper.make_graph([helper.make_node(op, inputs, ["Y"], **(attrs or {}))], op,
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))],
                              [helper.make_empty_tensor_value_info("Y")], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


def _pool(op, c, hw, k, stride, pad):
    return one_op(op, (1, c, hw, hw), {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [pad] * 4})


def _grouped(c, hw, k, stride, groups):
    return one_op("Conv", (1, c, hw, hw), {"kernel_shape": [k, k], "strides": [stride, stride],
                                           "pads": [k // 2] * 4, "group": groups}, weight=(c, c // groups, k, k))


TRAIN_OPS = {
    "maxpool_96x112_k3s2": lambda: _pool("MaxPool", 96, 112, 3, 2, 1),
    "maxpool_64x56_k3s1": lambda: _pool("MaxPool", 64, 56, 3, 1, 1),
    "avgpool_128x56_k3s1": lambda: _pool("AveragePool", 128, 56, 3, 1, 1),
    "dwconv_32x112_k3": lambda: _grouped(32, 112, 3, 1, 32),
    "dwconv_144x56_k3s2": lambda: _grouped(144, 56, 3, 2, 144),
    "dwconv_240x28_k5": lambda: _grouped(240, 28, 5, 1, 240),
    "gconv_64x56_g16": lambda: _grouped(64, 56, 3, 1, 16),
    "softmax_12x256x256": lambda: one_op("Softmax", (12, 256, 256), {"axis": -1}),
    "softmax_4x512x1024": lambda: one_op("Softmax", (4, 512, 1024), {"axis": -1}),
    "layernorm_512x768": lambda: one_op("LayerNormalization", (512, 768), {"axis": -1}),
    "layernorm_2048x256": lambda: one_op("LayerNormalization", (2048, 256), {"axis": -1}),
    "reducemean_512x56_hw": lambda: one_op("ReduceMean", (1, 512, 56, 56), {"axes": [2, 3]}, opset=17),
    "reducesum_1024x1024_last": lambda: one_op("ReduceSum", (1024, 1024), axes=[-1]),
    "reducemax_512x2048_first": lambda: one_op("ReduceMax", (512, 2048), {"axes": [0]}, opset=17),
}

HELD_OUT_OPS = {
    "maxpool_48x112_k3s2": lambda: _pool("MaxPool", 48, 112, 3, 2, 1),
    "avgpool_192x28_k3s1": lambda: _pool("AveragePool", 192, 28, 3, 1, 1),
    "dwconv_96x56_k3": lambda: _grouped(96, 56, 3, 1, 96),
    "dwconv_128x28_k5": lambda: _grouped(128, 28, 5, 1, 128),
    "gconv_64x28_g8": lambda: _grouped(64, 28, 3, 1, 8),
    "softmax_6x384x384": lambda: one_op("Softmax", (6, 384, 384), {"axis": -1}),
    "layernorm_1024x384": lambda: one_op("LayerNormalization", (1024, 384), {"axis": -1}),
    "reducemean_256x64_hw": lambda: one_op("ReduceMean", (1, 256, 64, 64), {"axes": [2, 3]}, opset=17),
    "reducesum_2048x768_first": lambda: one_op("ReduceSum", (2048, 768), axes=[0]),
}
assert not set(HELD_OUT_OPS) & set(TRAIN_OPS)


# ---------------------------------------------------------------- prepare (here)
def model_kernels(models_dir: Path, previous: dict | None = None) -> dict:
    """{name: kernel entry} of the model zoo's tasks above the predicted compile's work threshold.
    ``previous``: {workload: split} of kernels prepared before (``--previous``): they keep their
    split and are left out here; the other MobileNetV2 tasks alternate between the splits."""
    from model_zoo import export_model

    from tcomp.tuning.predicted import MIN_WORK, iterations
    from tcomp.tuning.tasks import extract_tasks

    previous = previous or {}
    kernels, split_of = {}, dict(previous)
    for model in TRAIN_MODELS + SPLIT_MODELS + HELD_OUT_MODELS:
        tasks = [t for t in extract_tasks(str(export_model(model, models_dir))) if iterations(t.func) >= MIN_WORK]
        fresh = [t for t in sorted(tasks, key=lambda t: t.workload) if t.workload not in previous]
        for index, task in enumerate(fresh):
            if model in SPLIT_MODELS:
                split = "train" if index % 2 == 0 else "heldout"
            else:
                split = "train" if model in TRAIN_MODELS else "heldout"
            if task.workload in split_of and (split_of[task.workload] == "train" or split == "heldout"):
                continue  # a workload of several models: once, in training where it trains anywhere
            split_of[task.workload] = split
            kernels = {n: k for n, k in kernels.items() if k["workload"] != task.workload}
            kernels[f"{model}.{task.name}"] = {"func": task.func, "template": task.template, "split": split,
                                               "workload": task.workload, "label": task.group_labels[0]}
    return kernels


def te_kernels() -> dict:
    from tcomp.tuning.workload import workload_key

    out = {}
    for split, defs in (("train", TRAIN_KERNELS), ("heldout", HELD_OUT)):
        for name, make in defs.items():
            func = make()
            out[f"te.{name}"] = {"func": func, "template": None, "split": split, "workload": workload_key(func),
                                 "label": name}
    return out


def op_kernels() -> dict:
    """{name: kernel entry} of the one-op models' tasks (``TRAIN_OPS`` train, ``HELD_OUT_OPS`` held out)."""
    from tcomp.tuning.predicted import MIN_WORK, iterations
    from tcomp.tuning.tasks import extract_tasks

    out = {}
    for split, defs in (("train", TRAIN_OPS), ("heldout", HELD_OUT_OPS)):
        for name, make in defs.items():
            (task,) = extract_tasks(make())
            assert iterations(task.func) >= MIN_WORK, name
            out[f"op.{name}"] = {"func": task.func, "template": task.template, "split": split,
                                 "workload": task.workload, "label": task.group_labels[0]}
    return out


def candidates(func, model, count_random: int, count_predicted: int, seed: int) -> list:
    """[(origin, trace JSON)]: random design-space samples, then the best predicted (distinct)."""
    from tcomp.tuning.predicted import ranked_candidates
    from tcomp.tuning.space import design_space

    sketches = design_space(func)
    rng = random.Random(seed)
    found: dict = {}
    for _ in range(4 * count_random):
        if len(found) == count_random:
            break
        try:
            sch = rng.choice(sketches).apply_to(func, resample=True, seed=rng.randrange(2**31))
        except Exception:  # noqa: BLE001 - an illegal draw is skipped, as the search does
            continue
        found.setdefault(sch.trace.to_json(), "random")
    predicted = 0
    for _, cand in ranked_candidates(func, model, top=4 * count_predicted):
        if predicted == count_predicted:
            break
        if cand.key not in found:
            found[cand.key] = "predicted"
            predicted += 1
    return [(origin, trace) for trace, origin in found.items()]


def prepare(args) -> None:
    from tcomp.costmodel.xgb import load_pretrained

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = {k["workload"]: k["split"] for d in args.previous for k in load_kernels(d).values()}
    kernels = model_kernels(Path(args.models_dir), previous)
    for name, entry in {**te_kernels(), **op_kernels()}.items():
        if entry["workload"] not in previous and entry["workload"] not in {k["workload"] for k in kernels.values()}:
            kernels[name] = entry
    model = load_pretrained("cpu")
    lines = []
    for index, (name, entry) in enumerate(kernels.items()):
        start = time.perf_counter()
        if entry["template"] is not None:
            lines.append({"kernel": name, "origin": "template", "trace": None})
        counts = (args.random, args.predicted) if entry["split"] == "train" else (args.heldout_random,
                                                                                 args.heldout_predicted)
        found = candidates(entry["func"], model, *counts, seed=index)
        lines += [{"kernel": name, "origin": origin, "trace": trace} for origin, trace in found]
        print(f"{name:40s} {entry['split']:8s} {len(found):3d} candidates  {entry['label'][:40]}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    with (out / "kernels.pickle").open("wb") as f:
        pickle.dump(kernels, f)
    (out / "candidates.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"{len(kernels)} kernels, {len(lines)} candidates -> {out}")


# ---------------------------------------------------------------- measure (on the measuring machine)
def load_kernels(directory) -> dict:
    with (Path(directory) / "kernels.pickle").open("rb") as f:
        return pickle.load(f)


def load_candidates(directory) -> list:
    return [json.loads(line) for line in (Path(directory) / "candidates.jsonl").read_text().splitlines()]


def shard_kernels(kernels: dict, lines: list, shard: int, shards: int) -> list:
    """Kernel names of one shard: kernels by estimated cost (iterations x candidates), each to the
    least loaded shard."""
    from tcomp.tuning.predicted import iterations

    count = {}
    for line in lines:
        count[line["kernel"]] = count.get(line["kernel"], 0) + 1
    cost = {name: count.get(name, 0) * (1 + iterations(k["func"]) / 1e7) for name, k in kernels.items()}
    loads, owner = [0.0] * shards, {}
    for name in sorted(cost, key=lambda n: -cost[n]):
        target = loads.index(min(loads))
        owner[name] = target
        loads[target] += cost[name]
    return [name for name in kernels if owner[name] == shard]


def refresh(args) -> None:
    """Rebuilds ``kernels.pickle`` from the kernels' definitions with the current code, each kernel
    keeping its name and split (matched by workload): pickled IR objects of an older tcomp lack
    attributes added since, and fail to build."""
    old = load_kernels(args.dir)
    fresh = {**model_kernels(Path(args.models_dir)), **te_kernels(), **op_kernels()}
    by_workload = {entry["workload"]: entry for entry in fresh.values()}
    missing = [name for name, entry in old.items() if entry["workload"] not in by_workload]
    if missing:
        raise SystemExit(f"refresh: no definition has the workload of {missing} (the task functions changed)")
    kernels = {name: {**by_workload[entry["workload"]], "split": entry["split"]} for name, entry in old.items()}
    with (Path(args.dir) / "kernels.pickle").open("wb") as f:
        pickle.dump(kernels, f)
    _forget_template_features(Path(args.dir), kernels)
    print(f"{len(kernels)} kernels rebuilt in {args.dir}")


def _forget_template_features(directory: Path, kernels: dict) -> None:
    """Drops the templates' cached features (``features.npz``): a rebuilt template is today's
    template kernel, whose features differ from the cached ones where the template code changed
    (a candidate's features are its trace replayed on the unchanged task function: kept)."""
    import numpy as np

    path = directory / "features.npz"
    if not path.exists():
        return
    stale = {_feature_key({"kernel": name, "origin": "template", "trace": None}) for name in kernels}
    with np.load(path) as f:
        keys, x, names = f["keys"].tolist(), f["x"], f["names"]
    keep = [i for i, key in enumerate(keys) if key not in stale]
    np.savez(path, keys=np.asarray([keys[i] for i in keep]), x=x[keep], names=names)


def measured_ok(directory) -> set:
    """(kernel, origin, trace) of the candidates measured "ok" in ``directory``'s measured files."""
    return {(row["kernel"], row["origin"], row["trace"]) for path in Path(directory).glob("measured_*.jsonl")
            for row in map(json.loads, path.read_text().splitlines()) if row["status"] == "ok"}


def measure(args) -> None:
    """Measures the shard's candidates not yet measured "ok" in the directory (a rerun resumes), of
    the ``--split`` kernels and the ``--kernels`` named, where given."""
    from tcomp.tuning.measure import Measurer

    kernels = load_kernels(args.dir)
    done = measured_ok(args.dir)
    lines = [line for line in load_candidates(args.dir) if (line["kernel"], line["origin"], line["trace"]) not in done]
    lines = [line for line in lines if (args.split is None or kernels[line["kernel"]]["split"] == args.split)
             and (not args.kernels or line["kernel"] in args.kernels)]
    shard, shards = (int(x) for x in args.shard.split("/"))
    wanted = {line["kernel"] for line in lines}
    mine = [name for name in shard_kernels(kernels, lines, shard, shards) if name in wanted]
    by_kernel = {name: [line for line in lines if line["kernel"] == name] for name in mine}
    start = time.perf_counter()
    with Path(args.out).open("w") as f:
        for part in (0, 1):   # the template and the first half of every kernel first
            for name in mine:
                todo = by_kernel[name]
                todo = todo[:(len(todo) + 1) // 2] if part == 0 else todo[(len(todo) + 1) // 2:]
                entry = kernels[name]
                for func, origin in ((entry["template"], "template"), (entry["func"], None)):
                    batch = [line for line in todo if (line["origin"] == "template") == (origin == "template")]
                    if not batch or time.perf_counter() - start > args.deadline:
                        continue
                    with Measurer(func, num_threads=args.threads, timeout_s=30.0) as measurer:
                        for line in batch:
                            if time.perf_counter() - start > args.deadline:
                                break
                            (result,) = measurer.measure([line["trace"] or Trace().to_json()])
                            f.write(json.dumps({**line, "status": result.status, "seconds": result.seconds}) + "\n")
                            f.flush()
                print(f"shard {shard}: {name} part {part}: {len(todo)} ({time.perf_counter() - start:.0f} s)",
                      flush=True)


# ---------------------------------------------------------------- from tuning databases (GPU targets)
def from_db(args) -> None:
    """A prepared-and-measured directory made of tuning databases: the records of ``tcomp.tune
    (model, target=...)`` runs (the search's candidates and the templates, measured on the target)
    become the measurements of the models' tasks. Every other task (by workload, in order) is held
    out, as ``SPLIT_MODELS``' are. This is how the GPU model is trained: its data is what tuning on
    the GPU measured (``tcomp tune MODEL --target cuda``), the CPU data's ``measure`` is CPU-only."""
    from tcomp.tuning.database import Database
    from tcomp.tuning.tasks import database_target, extract_tasks

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    key = database_target(args.target)
    databases = [Database(path) for path in args.db]
    kernels, lines, rows = {}, [], []
    for model in args.models:
        stem = Path(model).stem
        for task in extract_tasks(model, args.target):
            records = [r for db in databases for r in db.records(task.workload, key) if r.seconds]
            if task.workload in {k["workload"] for k in kernels.values()} or not records:
                continue
            name = f"{stem}.{task.name}"
            split = "train" if len(kernels) % 2 == 0 else "heldout"
            kernels[name] = {"func": task.func, "template": task.template, "split": split,
                             "workload": task.workload, "label": task.group_labels[0]}
            for record in records:
                origin = "template" if record.status == "template" else "search"
                line = {"kernel": name, "origin": origin, "trace": None if origin == "template" else record.trace}
                lines.append(line)
                rows.append({**line, "status": "ok", "seconds": record.seconds})
    with (out / "kernels.pickle").open("wb") as f:
        pickle.dump(kernels, f)
    (out / "candidates.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (out / "measured_db.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    print(f"{len(kernels)} kernels, {len(rows)} measurements of {key} -> {out}")


# ---------------------------------------------------------------- datasets (here)
def dataset(directories, split: str) -> dict:
    """{kernel: (features, seconds, origins)} of the "ok" measurements of one split's kernels in
    ``directories`` (one or several prepared and measured directories): a candidate's features
    from its trace replayed on the task function (as the search and the predicted compile score
    it), the template's from the template kernel. Features are cached in each directory
    (``features.npz``, keyed by kernel, origin and trace; extracted again when the feature names
    change). A kernel measured in several
    directories is taken from the last of them: a directory re-measured on another machine
    (``--dir xeon --dir here``) replaces the earlier measurements of the kernels it has."""
    import numpy as np

    from tcomp.costmodel.features import FEATURE_LENGTH

    out: dict = {}
    for directory in [directories] if isinstance(directories, (str, Path)) else directories:
        kernels = load_kernels(directory)
        rows = [json.loads(line) for path in sorted(Path(directory).glob("measured_*.jsonl"))
                for line in path.read_text().splitlines()]
        rows = [row for row in rows if kernels[row["kernel"]]["split"] == split and row["status"] == "ok"
                and row["seconds"]]
        features = _features(Path(directory), kernels, rows)
        here: dict = {}
        for row, x in zip(rows, features):
            xs, seconds, origins = here.setdefault(row["kernel"], ([], [], []))
            xs.append(x)
            seconds.append(row["seconds"])
            origins.append(row["origin"])
        out.update(here)
    return {name: (np.asarray(x, dtype=np.float32).reshape(-1, FEATURE_LENGTH), np.asarray(s), o)
            for name, (x, s, o) in out.items()}


def _features(directory: Path, kernels: dict, rows: list) -> list:
    """The feature vectors of measured ``rows``, from ``directory/features.npz`` where cached."""
    import numpy as np

    from tcomp.costmodel.features import FEATURE_NAMES, extract

    key = _feature_key
    path = directory / "features.npz"
    cache = {}
    if path.exists():
        with np.load(path) as f:
            if "names" in f and tuple(f["names"].tolist()) == FEATURE_NAMES:   # else: extracted by other code
                cache = dict(zip(f["keys"].tolist(), f["x"]))
    missing = [row for row in rows if key(row) not in cache]
    for row in missing:
        entry = kernels[row["kernel"]]
        func = entry["template"] if row["origin"] == "template" else \
            Trace.from_json(row["trace"]).apply_to(entry["func"]).func
        cache[key(row)] = np.asarray(extract(func), dtype=np.float32)
    if missing:
        np.savez(path, keys=np.asarray(list(cache)), x=np.stack(list(cache.values())), names=np.asarray(FEATURE_NAMES))
    return [cache[key(row)] for row in rows]


def _feature_key(row) -> str:
    """The ``features.npz`` key of a measured row: its kernel, origin and trace."""
    import hashlib

    return hashlib.sha1(f"{row['kernel']}|{row['origin']}|{row['trace']}".encode()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="kernels and their candidates (needs torch and transformers)")
    p.add_argument("--dir", default="costmodel_data")
    p.add_argument("--models-dir", default="/tmp/tcomp-bench-models")
    p.add_argument("--random", type=int, default=40, help="random design-space samples per training kernel")
    p.add_argument("--predicted", type=int, default=16, help="best predicted candidates per training kernel")
    p.add_argument("--heldout-random", type=int, default=24)
    p.add_argument("--heldout-predicted", type=int, default=8)
    p.add_argument("--previous", action="append", default=[], metavar="DIR",
                   help="a directory prepared before: its kernels keep their split and are not prepared again")
    m = sub.add_parser("measure", help="measures one shard of the kernels")
    m.add_argument("--dir", default="costmodel_data")
    m.add_argument("--shard", default="0/1", help="i/n")
    m.add_argument("--out", required=True)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new kernel part starts")
    m.add_argument("--split", choices=("train", "heldout"), help="only this split's kernels")
    m.add_argument("--kernels", nargs="+", help="only these kernels (names as in kernels.pickle)")
    r = sub.add_parser("refresh", help="rebuilds kernels.pickle from the definitions (after a change to the IR)")
    r.add_argument("--dir", default="costmodel_data")
    r.add_argument("--models-dir", default="/tmp/tcomp-bench-models")
    d = sub.add_parser("from-db", help="a directory of measurements from tuning databases (GPU targets)")
    d.add_argument("--dir", required=True)
    d.add_argument("--db", action="append", required=True, help="a database of tcomp.tune runs (repeatable)")
    d.add_argument("--models", nargs="+", required=True, help="the ONNX models that were tuned")
    d.add_argument("--target", default="cuda")
    args = parser.parse_args()
    {"prepare": prepare, "measure": measure, "refresh": refresh, "from-db": from_db}[args.command](args)


if __name__ == "__main__":
    main()
