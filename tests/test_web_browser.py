"""``mod.export_web``: the bundle's layout (everywhere: exporting needs no device), then the bundle in
headless Chromium (apt's, through playwright) served from 127.0.0.1, against onnxruntime on fresh
random inputs: outputs, the JIT's cached choice on the second load, clear errors for bad inputs and
for a shader that does not compile."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from onnx import helper

from model_zoo import export_model, random_inputs
from onnx_helpers import make_model, rand, reference
from web_browser_helpers import BrowserSession, unavailable

import tcomp
from tcomp.errors import TcompError


def _embedding_model():
    """Gather (int64 ids, negatives wrap) -> Add -> Softmax (-inf constants) -> ReduceMean, a bool
    output and an int64 output (Cast)."""
    nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
             helper.make_node("Add", ["emb", "x"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("ReduceMean", ["p"], ["m"], keepdims=1, axes=[1]),
             helper.make_node("Greater", ["s", "m"], ["g"]),
             helper.make_node("Cast", ["g"], ["gi"], to=7)]
    inputs = {"x": rand((6, 50)), "ids": np.zeros((6,), np.int64)}
    return make_model(nodes, inputs, ["p", "m", "gi", "g"], opset=13, inits={"table": rand((10, 50))})


def _feeds(rng):
    return {"x": rng.standard_normal((6, 50)).astype(np.float32), "ids": rng.integers(-10, 10, 6)}


def _matmul_model():
    """MatMul + bias + Relu, then a second MatMul: tiled kernels, which get variants."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    return make_model(nodes, {"x": rand((64, 96))}, ["y"], opset=13,
                      inits={"w1": rand((96, 128)), "b1": rand((128,)), "w2": rand((128, 48))})


# ---------------------------------------------------------------- the bundle (no device)
def test_bundle_layout(tmp_path):
    mod = tcomp.compile(_embedding_model(), target="webgpu")
    out = mod.export_web(tmp_path / "bundle")
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "tcomp.js").read_text().startswith("// tcomp.js")
    assert (out / "weights.bin").stat().st_size == manifest["regions"]["weights"]
    assert [t["name"] for t in manifest["inputs"]] == ["x", "ids"]
    assert manifest["inputs"][1] == {"name": "ids", "shape": [6], "dtype": "int64", "offset": 1280, "bytes": 48}
    assert [(t["name"], t["dtype"], t["shape"]) for t in manifest["outputs"]] == \
        [("p", "float32", [6, 50]), ("m", "float32", [6, 1]), ("gi", "int64", [6, 50]), ("g", "bool", [6, 50])]
    assert "int64" in manifest["int64"]
    for step in manifest["steps"]:
        assert len(step["variants"]) == len(manifest["kernels"][step["kernel"]]["variants"])
        for launches in step["variants"]:
            for launch in launches:
                shader = manifest["shaders"][launch["shader"]]
                assert f"fn {launch['shader']}(" in (out / shader["file"]).read_text()
                for region, offset, size in launch["buffers"]:
                    assert offset % 256 == 0 and size % 4 == 0
                    assert offset + size <= max(256, manifest["regions"][region])


def test_bundle_variants_of_tiled_kernels(tmp_path):
    mod = tcomp.compile(_matmul_model(), target="webgpu")
    manifest = json.loads((mod.export_web(tmp_path / "b", variants=6) / "manifest.json").read_text())
    tiled = [k for k in manifest["kernels"].values() if k["variants"][0].startswith("tiled")]
    assert tiled and all(2 <= len(k["variants"]) <= 6 for k in tiled)
    sources = {(tmp_path / "b" / manifest["shaders"][n]["file"]).read_text().replace(n, "") for n in manifest["shaders"]}
    assert len(sources) == len(manifest["shaders"])  # no two variants alike


def test_export_errors(tmp_path):
    mod = tcomp.compile(_embedding_model(), target="webgpu")
    with pytest.raises(TcompError, match="variants=33: between 1 and 32"):
        mod.export_web(tmp_path, variants=33)
    with pytest.raises(TcompError, match="compiled for cpu; compile it with target='webgpu'"):
        tcomp.compile(_embedding_model()).export_web(tmp_path)
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, {"x": rand((2, 3))}, ["y"], opset=13)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    dynamic = tcomp.compile(model, target="webgpu")
    with pytest.raises(TcompError, match=r"symbolic sizes \['batch'\]; give input_shapes for \['x'\]"):
        dynamic.export_web(tmp_path)
    manifest = json.loads((dynamic.export_web(tmp_path / "b", input_shapes={"x": (5, 3)}) / "manifest.json").read_text())
    assert manifest["sizes"] == {"batch": 5} and manifest["inputs"][0]["shape"] == [5, 3]


# ---------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip(f"no browser test: {reason}")
    with BrowserSession(tmp_path_factory.mktemp("web")) as session:
        missing = session.webgpu_missing()
        if missing:
            pytest.skip(f"no WebGPU in headless Chromium here: {missing}")
        yield session


def _export(browser, model, name: str, **kwargs):
    mod = tcomp.compile(model, target="webgpu", **kwargs)
    shutil.rmtree(browser.root / name, ignore_errors=True)
    mod.export_web(browser.root / name)
    return mod


def _assert_matches(outputs: dict, want: list, rtol=1e-5, atol=1e-6):
    for (name, got), expected in zip(outputs.items(), want):
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, err_msg=name)


def test_browser_matches_onnxruntime(browser):
    model = _embedding_model()
    _export(browser, model, "embedding")
    feeds = _feeds(np.random.default_rng())
    result = browser.load_and_run("embedding", feeds)
    _assert_matches(result["outputs"], reference(model, feeds))
    assert result["report"]["adapter"]["vendor"]  # the adapter the browser used is reported


def test_browser_jit_times_variants_then_uses_the_cached_choice(browser):
    model = _matmul_model()
    _export(browser, model, "matmul")
    feeds = {"x": rand((64, 96))}
    first = browser.load_and_run("matmul", feeds, options={"tuneBudgetMs": 600_000})  # every variant timed
    _assert_matches(first["outputs"], reference(model, feeds), rtol=1e-4, atol=1e-4)
    timed = [k for k in first["report"]["kernels"] if k["variants"] > 1]
    assert timed and all(k["source"] == "timed" for k in timed)
    assert all(sum(t is not None for t in k["ms"]) >= 1 for k in timed)
    second = browser.load_and_run("matmul", feeds)
    picks = {k["kernel"]: (k["picked"], k["source"]) for k in second["report"]["kernels"] if k["variants"] > 1}
    assert picks == {k["kernel"]: (k["picked"], "cached") for k in timed}
    _assert_matches(second["outputs"], reference(model, feeds), rtol=1e-4, atol=1e-4)


def test_browser_jit_out_of_budget_infers_the_picks(browser):
    """No budget: no variant is timed; each kernel takes the variant that won most among the timed
    kernels (none here: its first), and the outputs are right."""
    model = _matmul_model()
    _export(browser, model, "matmul_no_budget")
    feeds = {"x": rand((64, 96))}
    result = browser.load_and_run("matmul_no_budget", feeds, options={"tuneBudgetMs": 0, "cache": False})
    _assert_matches(result["outputs"], reference(model, feeds), rtol=1e-4, atol=1e-4)
    tuned = [k for k in result["report"]["kernels"] if k["variants"] > 1]
    assert tuned and all(k["source"] == "inferred" and k["ms"] is None for k in tuned)


@pytest.mark.parametrize("feeds, message", [
    ({"x": np.zeros((6, 50), np.float32)}, r"missing input 'ids' \(int64\[6\]\)"),
    ({"x": np.zeros((6, 50), np.float32), "ids": np.zeros(6, np.int64), "y": np.zeros(1, np.float32)},
     r"unknown input name\(s\) y; the model's inputs are x, ids"),
    ({"x": np.zeros((6, 50), np.float64), "ids": np.zeros(6, np.int64)},
     r"input 'x': expected a Float32Array \(float32\[6, 50\]\), got Float64Array"),
    ({"x": np.zeros((6, 49), np.float32), "ids": np.zeros(6, np.int64)},
     r"input 'x': 294 elements, expected 300 \(float32\[6, 50\]\)"),
    ({"x": np.zeros((6, 50), np.float32), "ids": np.array([0, 1, 2, 3, 4, 2**33])},
     r"input 'ids': int64 value 8589934592 at index 5 does not fit 32 bits"),
])
def test_browser_input_errors(browser, feeds, message):
    if not (browser.root / "embedding").exists():
        _export(browser, _embedding_model(), "embedding")
    with pytest.raises(Exception, match=f"TcompError: {message}"):
        browser.load_and_run("embedding", feeds)


def test_browser_shader_error_names_the_kernel(browser):
    _export(browser, _embedding_model(), "broken")
    manifest = json.loads((browser.root / "broken" / "manifest.json").read_text())
    # a kernel with one variant: its shader is compiled whatever the JIT cached for the others
    name = next(step["variants"][0][0]["shader"] for step in manifest["steps"] if len(step["variants"]) == 1)
    path = browser.root / "broken" / manifest["shaders"][name]["file"]
    path.write_text(path.read_text().replace("{", "{ let oops: f32 = 1u;", 1))
    with pytest.raises(Exception, match=f"kernel {name}: the WGSL shader does not compile:\n.*wgsl:"):
        browser.load_and_run("broken", _feeds(np.random.default_rng()))


@pytest.mark.parametrize("name", ["resnet18", "bert"])
def test_browser_model_zoo(browser, zoo_dir, name):
    """ResNet-18 and a 2-layer BERT (the model zoo's small configurations)."""
    import onnx

    path = export_model(name, zoo_dir, small=True)
    feeds = random_inputs(str(path), np.random.default_rng())
    _export(browser, str(path), name)
    result = browser.load_and_run(name, feeds)
    _assert_matches(result["outputs"], reference(onnx.load(str(path)), feeds), rtol=1e-3, atol=1e-3)
