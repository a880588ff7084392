"""The command line on the example model shipped in the repo."""
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "resnet18_small.onnx"


def _tcomp(*args):
    return subprocess.run([sys.executable, "-m", "tcomp.cli", *args], capture_output=True, text=True, timeout=300)


def test_run_prints_latency_memory_and_difference_to_onnxruntime():
    result = _tcomp("run", str(EXAMPLE), "--target", "cpu", "--repeat", "3")
    assert result.returncode == 0, result.stderr
    assert "latency: median" in result.stdout
    assert "peak intermediate memory" in result.stdout
    line = next(l for l in result.stdout.splitlines() if l.startswith("vs onnxruntime"))
    assert float(line.split("relative")[1]) < 1e-4


def test_inspect_shows_groups_kernels_and_loop_ir():
    result = _tcomp("inspect", str(EXAMPLE), "--kernel", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Conv+Add+Relu" in out and "fused groups" in out and "kernels:" in out
    assert "loop IR of k0_conv" in out and "parallel(" in out and "vectorized(16)" in out or "vectorized(8)" in out


def test_run_with_symbolic_input_shape(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])
    model = helper.make_model(helper.make_graph([helper.make_node("Tanh", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    path = tmp_path / "sym.onnx"
    onnx.save(model, path)
    refused = _tcomp("run", str(path))
    assert refused.returncode == 2 and "symbolic dimension(s) 'batch'" in refused.stderr
    for batch in (3, 1):  # the same symbolic model at two sizes
        result = _tcomp("run", str(path), "--input-shape", f"x={batch},5", "--repeat", "2")
        assert result.returncode == 0, result.stderr
        assert f"output y: float32[{batch}, 5]" in result.stdout
        diff = float(result.stdout.split("vs onnxruntime y: max |diff| ")[1].split(",")[0])
        assert diff < 1e-6
