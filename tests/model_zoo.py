"""Model zoo for end-to-end tests: real HuggingFace architectures, random weights.

Each model is built from a ``transformers`` config (never ``from_pretrained``:
no network), seeded with ``torch.manual_seed`` so the export is reproducible,
put in eval mode and exported with the TorchScript ONNX exporter
(``torch.onnx.export(..., opset_version=17, dynamo=False)``).

Only the first output (``last_hidden_state``) is exported.  Graph inputs are
named exactly like the HF forward arguments (``pixel_values`` or
``input_ids`` / ``attention_mask``); shapes are static.

Usage::

    from tests.model_zoo import MODEL_NAMES, export_model, random_inputs
    path = export_model("bert", tmp_dir, small=True)
    feed = random_inputs(path, np.random.default_rng(0))

``small=True`` gives a CI-sized variant of the same architecture (fewer layers,
narrower, smaller images / shorter sequences) that exercises the same ops.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Tuple, Union

import numpy as np

MODEL_NAMES: Tuple[str, ...] = ("resnet18", "mobilenetv2", "vit_tiny", "bert", "gpt2")

OPSET = 17
MAX_IR_VERSION = 10  # onnxruntime compatibility ceiling
SEED = 0
# Bump when a spec below changes, so cached .onnx files get re-exported.
ZOO_VERSION = "2"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    small: bool
    kind: str  # "vision" or "text"
    build: Callable[[], "object"]  # returns an nn.Module (HF model)
    image_size: int = 224
    seq_len: int = 128
    vocab_size: int = 0  # text models only
    extra: Dict[str, object] = field(default_factory=dict)


# vocab sizes, keyed by (name, small); used by random_inputs
VOCAB_SIZES: Dict[Tuple[str, bool], int] = {
    ("bert", False): 30522,
    ("bert", True): 1024,
    ("gpt2", False): 50257,
    ("gpt2", True): 1024,
}


def _spec(name: str, small: bool) -> ModelSpec:
    import transformers as T

    if name == "resnet18":
        if small:
            cfg = T.ResNetConfig(layer_type="basic", depths=[1, 1, 1, 1],
                                 embedding_size=16, hidden_sizes=[16, 32, 64, 128])
            img = 64
        else:
            cfg = T.ResNetConfig(layer_type="basic", depths=[2, 2, 2, 2],
                                 hidden_sizes=[64, 128, 256, 512])
            img = 224
        return ModelSpec(name, small, "vision", lambda: T.ResNetModel(cfg), image_size=img)

    if name == "mobilenetv2":
        if small:
            cfg = T.MobileNetV2Config(depth_multiplier=0.35, image_size=96)
            img = 96
        else:
            cfg = T.MobileNetV2Config()
            img = 224
        # HF's init (conv std=0.02, BN stats 0/1) makes activations vanish
        # through 52 conv+BN layers (output ~1e-22), so recalibrate BN.
        return ModelSpec(name, small, "vision", lambda: T.MobileNetV2Model(cfg), image_size=img,
                         extra={"calibrate_bn": True})

    if name == "vit_tiny":
        img = 64 if small else 224
        cfg = T.ViTConfig(hidden_size=192, num_attention_heads=3, intermediate_size=768,
                          num_hidden_layers=2 if small else 12, image_size=img)
        return ModelSpec(name, small, "vision", lambda: T.ViTModel(cfg), image_size=img)

    if name == "bert":
        vocab = VOCAB_SIZES[(name, small)]
        if small:
            cfg = T.BertConfig(vocab_size=vocab, hidden_size=128, num_attention_heads=2,
                               intermediate_size=512, num_hidden_layers=2,
                               max_position_embeddings=128)
            seq = 32
        else:
            cfg = T.BertConfig()
            seq = 128
        return ModelSpec(name, small, "text",
                         lambda: T.BertModel(cfg, add_pooling_layer=False),
                         seq_len=seq, vocab_size=vocab)

    if name == "gpt2":
        vocab = VOCAB_SIZES[(name, small)]
        if small:
            cfg = T.GPT2Config(vocab_size=vocab, n_embd=128, n_head=2, n_layer=2,
                               n_positions=128, use_cache=False,
                               bos_token_id=vocab - 1, eos_token_id=vocab - 1)
            seq = 32
        else:
            cfg = T.GPT2Config(use_cache=False)
            seq = 128
        return ModelSpec(name, small, "text", lambda: T.GPT2Model(cfg),
                         seq_len=seq, vocab_size=vocab)

    raise KeyError(f"unknown model {name!r}; known: {MODEL_NAMES}")


def model_path(name: str, out_dir: Union[str, os.PathLike], small: bool = False, dynamic: bool = False) -> Path:
    return Path(out_dir) / f"{name}{'_small' if small else ''}{'_dynamic' if dynamic else ''}.onnx"


def _example_inputs(spec: ModelSpec):
    """Trace-time inputs.  The attention mask deliberately has trailing zeros:
    transformers skips building the mask when it is all ones, and under
    tracing that data-dependent check would be baked into the graph."""
    import torch

    g = torch.Generator().manual_seed(SEED)
    if spec.kind == "vision":
        return {"pixel_values": torch.randn(1, 3, spec.image_size, spec.image_size, generator=g)}
    ids = torch.randint(0, spec.vocab_size, (1, spec.seq_len), generator=g, dtype=torch.int64)
    mask = torch.ones(1, spec.seq_len, dtype=torch.int64)
    mask[:, -4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _dynamic_axes(spec: ModelSpec, inputs: dict) -> dict:
    axes = {0: "batch"} if spec.kind == "vision" else {0: "batch", 1: "sequence"}
    return {name: axes for name in list(inputs) + ["last_hidden_state"]}


def _cache_is_valid(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        import onnx

        m = onnx.load(str(path), load_external_data=False)
        meta = {p.key: p.value for p in m.metadata_props}
        return meta.get("zoo_version") == ZOO_VERSION
    except Exception:
        return False


def _wrap(kind: str, hf):
    """Wrap an HF model in a module with an explicit positional signature.

    The TorchScript exporter traces positional args only; the wrapper passes
    them to the HF forward by keyword and returns only the first output
    (last_hidden_state).
    """
    import torch

    class _Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values)[0]

    class _Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask)[0]

    return (_Vision if kind == "vision" else _Text)(hf).eval()


def build_torch_model(name: str, small: bool = False):
    """The seeded, eval-mode torch module that export_model exports.

    Takes positional inputs (``pixel_values`` or ``input_ids, attention_mask``)
    and returns ``last_hidden_state``; useful as a numerical reference.
    """
    import torch

    spec = _spec(name, small)
    torch.manual_seed(SEED)
    hf = spec.build().eval()
    if spec.extra.get("calibrate_bn"):
        _calibrate_batchnorm(hf, spec)
    return _wrap(spec.kind, hf)


def _calibrate_batchnorm(hf, spec: ModelSpec, batch: int = 8) -> None:
    """Set BatchNorm running stats from one train-mode pass over random images,
    so that with random weights every BN output is ~N(0, 1) instead of the
    activations shrinking geometrically with depth.  Deterministic (seeded)."""
    import torch

    bns = [m for m in hf.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(batch, 3, spec.image_size, spec.image_size, generator=g)
    hf.train()
    with torch.no_grad():
        hf(pixel_values=x)
    hf.eval()
    for m, mom in zip(bns, saved):
        m.momentum = mom


def export_model(name: str, out_dir: Union[str, os.PathLike], small: bool = False,
                 force: bool = False, dynamic: bool = False) -> Path:
    """Export ``name`` (one of MODEL_NAMES) to ONNX in ``out_dir``; cached.

    ``dynamic`` leaves the batch (and for text models the sequence) dimension
    symbolic: ``dim_param`` "batch" and "sequence".

    Returns the path of the .onnx file.  The file is re-used if it exists and
    was written by the same ZOO_VERSION (unless ``force``).
    """
    import onnx
    import torch

    spec = _spec(name, small)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = model_path(name, out_dir, small, dynamic)
    if not force and _cache_is_valid(path):
        return path

    wrapper = build_torch_model(name, small)
    inputs = _example_inputs(spec)

    with tempfile.TemporaryDirectory(dir=out_dir) as td:
        raw = Path(td) / "raw.onnx"
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                tuple(inputs.values()),
                str(raw),
                input_names=list(inputs),
                output_names=["last_hidden_state"],
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
                dynamic_axes=_dynamic_axes(spec, inputs) if dynamic else None,
            )
        model = onnx.load(str(raw))
        if model.ir_version > MAX_IR_VERSION:
            model.ir_version = MAX_IR_VERSION
        meta = {
            "zoo_model": name,
            "zoo_small": str(int(small)),
            "zoo_version": ZOO_VERSION,
            "zoo_seed": str(SEED),
        }
        if spec.vocab_size:
            meta["vocab_size"] = str(spec.vocab_size)
        onnx.helper.set_model_props(model, meta)
        tmp = Path(td) / path.name
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    return path


_NP_DTYPES = {
    1: np.float32, 10: np.float16, 11: np.float64, 6: np.int32, 7: np.int64, 9: np.bool_,
}


def _vocab_for(model, path_hint: str = "") -> int:
    meta = {p.key: p.value for p in model.metadata_props}
    if "vocab_size" in meta:
        return int(meta["vocab_size"])
    name = meta.get("zoo_model")
    small = meta.get("zoo_small") == "1"
    if name is None and path_hint:
        stem = Path(path_hint).stem
        small = stem.endswith("_small")
        name = stem[: -len("_small")] if small else stem
    if (name, small) in VOCAB_SIZES:
        return VOCAB_SIZES[(name, small)]
    raise ValueError(f"cannot determine vocab size for {path_hint or name!r}")


def random_inputs(onnx_path_or_model, rng: np.random.Generator, sizes: dict | None = None) -> Dict[str, np.ndarray]:
    """Random feed dict for an exported zoo model (path or onnx.ModelProto).

    float inputs: standard normal; ``input_ids``: ints in [0, vocab);
    ``attention_mask``: ones with a few (1..8) trailing zeros (none for sequences shorter than 3).
    ``sizes`` gives symbolic dimensions by name ({"batch": 3, "sequence": 7}); 1 otherwise.
    """
    import onnx

    if isinstance(onnx_path_or_model, (str, os.PathLike)):
        hint = str(onnx_path_or_model)
        model = onnx.load(hint, load_external_data=False)
    else:
        hint, model = "", onnx_path_or_model

    init_names = {i.name for i in model.graph.initializer}
    feed: Dict[str, np.ndarray] = {}
    for inp in model.graph.input:
        if inp.name in init_names:
            continue
        tt = inp.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (sizes or {}).get(d.dim_param, 1)
                      for d in tt.shape.dim)
        dtype = _NP_DTYPES[tt.elem_type]
        if inp.name == "input_ids":
            feed[inp.name] = rng.integers(0, _vocab_for(model, hint), size=shape, dtype=dtype)
        elif inp.name == "attention_mask":
            m = np.ones(shape, dtype=dtype)
            seq = shape[-1]
            if seq >= 3:
                k = int(rng.integers(1, min(8, seq - 1) + 1))
                m[..., seq - k:] = 0
            feed[inp.name] = m
        elif np.issubdtype(dtype, np.floating):
            feed[inp.name] = rng.standard_normal(shape).astype(dtype)
        else:
            raise ValueError(f"don't know how to fill input {inp.name!r} ({dtype})")
    return feed
