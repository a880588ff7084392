"""Tunes BERT-base (batch 8, seq 128) and ResNet-50 (batch 32) on the GPU, then makes the measured
candidates a cost-model data directory: what the shipped cuda cost model is trained on.

    python benchmarks/gpu_tune_models.py --minutes 4 --out gpu_runs [--dtypes fp32,fp16] [--models resnet50]
    python benchmarks/costmodel_train.py --dir gpu_runs/gpu_data --out tcomp/costmodel/pretrained/cuda.json
    python benchmarks/costmodel_eval.py --dir gpu_runs/gpu_data --target cuda

Each model (``gpu.py``'s ``model_case``, in each of ``--dtypes``) is saved with static input shapes and
tuned by ``tcomp tune MODEL --target cuda --minutes M`` (one after the other, so that timings never share
the GPU) into ``OUT/<model>_<dtype>.db``; its per-kernel table goes to ``OUT/tune_<model>_<dtype>.log``.
Then ``costmodel_data.py from-db`` turns the databases into ``OUT/gpu_data`` (every other task held out).
``gpu.py --model-db`` times a model compiled with such a database next to the untuned one and torch.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODELS = ("bert", "resnet50")


def static_model(name: str, model_dir: Path, dtype: str = "fp32") -> Path:
    """The benchmark model ``name`` in ``dtype`` with its inputs' sizes fixed to the benchmark's (tuning
    tasks need static shapes)."""
    import onnx
    from gpu import model_case

    _, path, inputs = model_case(name, dtype, model_dir)
    model = onnx.load(str(path))
    for value in model.graph.input:
        if value.name in inputs:
            for dim, size in zip(value.type.tensor_type.shape.dim, inputs[value.name].shape):
                dim.dim_value = size
    out = model_dir / f"{path.stem}_static.onnx"
    onnx.save(model, str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="tuning wall time per model")
    parser.add_argument("--out", type=Path, default=Path("gpu_runs"))
    parser.add_argument("--model-dir", type=Path, default=Path("benchmark_models"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--dtypes", default="fp32", help="fp32, fp16 (gpu.py's half_model)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = {f"{name}_{dtype}": static_model(name, args.model_dir, dtype)
              for name in args.models.split(",") for dtype in args.dtypes.split(",")}
    for name, path in models.items():
        with (args.out / f"tune_{name}.log").open("w") as log:
            subprocess.run([sys.executable, "-m", "tcomp.cli", "tune", str(path), "--target", "cuda", "--minutes",
                            str(args.minutes), "--trials", "4000", "--db", str(args.out / f"{name}.db")],
                           stdout=log, stderr=subprocess.STDOUT, check=True)
        print((args.out / f"tune_{name}.log").read_text().split("\r")[-1], flush=True)
    subprocess.run([sys.executable, str(HERE / "costmodel_data.py"), "from-db", "--dir", str(args.out / "gpu_data"),
                    *[arg for name in models for arg in ("--db", str(args.out / f"{name}.db"))],
                    "--models", *map(str, models.values()), "--target", "cuda"], check=True)


if __name__ == "__main__":
    main()
