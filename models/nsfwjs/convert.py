#!/usr/bin/env python3
"""Convert nsfwjs's MobileNetV2 (a TensorFlow.js layers model) into a deterministic ONNX file.

Run from the repository root with the models venv (node and npm must be on PATH):

    models/.venv/bin/python models/nsfwjs/convert.py

What it does:

1. `npm pack nsfwjs@4.4.0` into models/nsfwjs/.cache (git-ignored) and checks the tarball's sha256
   and the sha256 of the two bundled model files it uses.
2. Evaluates the two UMD wrappers with node (a fake CommonJS `module`, nothing else) and reads back
   the Keras topology, the weight manifest and the base64 weight shard as JSON.
3. Decodes the weights exactly as tfjs-core's io.decodeWeights does for uint8-quantized float32
   tensors: value = float32(q * scale + min), the arithmetic done in float64 as JavaScript does.
4. Builds an ONNX graph (opset 13) from the Keras layer list. Input `input`, NHWC float32
   [1, 224, 224, 3] in [0, 1]; output `probabilities` [1, 5] (softmax; Drawing, Hentai, Neutral,
   Porn, Sexy). Internally NCHW. Batch normalisations that directly follow a convolution are folded
   into it (float64, then float32) and ZeroPadding2D layers that feed a convolution become its pads.
5. Writes models/nsfwjs/nsfwjs-mobilenetv2.onnx (git-ignored) and prints its sha256. The bytes only
   depend on the pinned inputs and on the onnx package version (models/requirements.txt): no
   timestamps, names come from the Keras layers, nodes follow the topology's order.

The reference pipeline (the package's own code on TensorFlow.js's CPU backend) is reference.mjs;
check.py compares the two.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
OUTPUT = HERE / "nsfwjs-mobilenetv2.onnx"

PACKAGE = "nsfwjs"
VERSION = "4.4.0"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
TARBALL_SHA256 = "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382"
MODEL_JS = "package/dist/models/mobilenet_v2/model.min.js"
SHARD_JS = "package/dist/models/mobilenet_v2/group1-shard1of1.min.js"
FILE_SHA256 = {
    MODEL_JS: "c32f104fd562b08cdff5ed69dfe1209643afa47e792fb12751d2949aa61a397a",
    SHARD_JS: "ef2e0a63f7d2c4960b37b024b669313f65d3c45cd59e9042636c55b39de53517",
}
# The weight manifest names its only shard "group1-shard1of1"; nsfwjs maps it to SHARD_JS.
SHARD_PATHS = {"group1-shard1of1": SHARD_JS}

LABELS = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
OPSET = 13
IR_VERSION = 7  # the IR version that goes with opset 13
PRODUCER = "prescreen models/nsfwjs/convert.py"
PRODUCER_VERSION = "1"

# The file checksum helper of models/prepare.py (importing it runs nothing).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from prepare import sha256_of  # noqa: E402


def fail(msg: str) -> None:
    print(f"convert: error: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------------------------------
# 1-2. Fetch, verify, read the bundled model.


def fetch() -> Path:
    """The verified, extracted npm package (its `package/` folder lives in CACHE)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tgz = CACHE / TARBALL
    if not tgz.exists() or sha256_of(tgz) != TARBALL_SHA256:
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            subprocess.run(
                ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", tmp],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            os.replace(Path(tmp) / TARBALL, tgz)
    actual = sha256_of(tgz)
    if actual != TARBALL_SHA256:
        fail(f"{TARBALL} has sha256 {actual}, expected {TARBALL_SHA256}")
    # Always re-extract the two files we use from the verified tarball.
    with tarfile.open(tgz) as tar:
        for member in FILE_SHA256:
            tar.extract(member, CACHE, filter="data")
    for member, want in FILE_SHA256.items():
        got = sha256_of(CACHE / member)
        if got != want:
            fail(f"{member} has sha256 {got}, expected {want}")
    return CACHE


# Evaluates a UMD bundle as CommonJS (its first branch) and prints what it exports as JSON. The
# bundle sees only `module` and `exports`; `define`, `window` and friends stay undefined.
NODE_EVAL = r"""
const fs = require("fs");
const src = fs.readFileSync(process.argv[1], "utf8");
const mod = { exports: {} };
new Function("module", "exports", "require", src)(mod, mod.exports, undefined);
process.stdout.write(JSON.stringify(mod.exports));
"""


def eval_umd(path: Path):
    out = subprocess.run(
        ["node", "-e", NODE_EVAL, str(path)], check=True, capture_output=True
    ).stdout
    return json.loads(out)


def load_bundle(root: Path):
    """(Keras model config, {weight name: float32 array}) from the package's bundled files."""
    model_json = eval_umd(root / MODEL_JS)
    topology = model_json["modelTopology"]
    if "model_config" in topology:  # Keras-exported topology (this one) ...
        topology = topology["model_config"]
    config = topology  # ... or a bare {class_name, config}
    if config.get("class_name") not in ("Model", "Functional"):
        fail(f"unsupported topology class {config.get('class_name')!r}, not a functional Model")

    weights: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        data = b""
        for p in group["paths"]:
            if p not in SHARD_PATHS:
                fail(f"weight shard {p!r} is not one this script knows")
            shard = eval_umd(root / SHARD_PATHS[p])
            if not isinstance(shard, str):
                fail(f"{SHARD_PATHS[p]} does not export a base64 string")
            data += base64.b64decode(shard, validate=True)
        offset = 0
        for spec in group["weights"]:
            arr, size = decode_weight(spec, data, offset)
            if spec["name"] in weights:
                fail(f"weight {spec['name']} appears twice in the manifest")
            weights[spec["name"]] = arr
            offset += size
        if offset != len(data):
            fail(f"weight manifest describes {offset} bytes, the shards hold {len(data)}")
    return config["config"], weights


def decode_weight(spec: dict, data: bytes, offset: int) -> tuple[np.ndarray, int]:
    """One tensor of a weight group, as tfjs-core's io.decodeWeights decodes it."""
    shape = [int(d) for d in spec["shape"]]
    count = int(np.prod(shape, dtype=np.int64))
    if spec["dtype"] != "float32":
        fail(f"weight {spec['name']} has dtype {spec['dtype']}; only float32 is supported")
    q = spec.get("quantization")
    if q is None:
        size = 4 * count
        arr = np.frombuffer(data, dtype="<f4", count=count, offset=offset)
    elif q["dtype"] in ("uint8", "uint16"):
        qtype = np.uint8 if q["dtype"] == "uint8" else np.dtype("<u2")
        size = np.dtype(qtype).itemsize * count
        raw = np.frombuffer(data, dtype=qtype, count=count, offset=offset)
        # tfjs: values[i] = v * scale + min, computed on JavaScript numbers (float64: a product
        # rounded, then a sum rounded, no fused multiply-add) and stored in a Float32Array.
        arr = (raw.astype(np.float64) * float(q["scale"]) + float(q["min"])).astype(np.float32)
    elif q["dtype"] == "float16":
        size = 2 * count
        arr = np.frombuffer(data, dtype="<f2", count=count, offset=offset).astype(np.float32)
    else:
        fail(f"weight {spec['name']} has unknown quantization {q['dtype']!r}")
    if offset + size > len(data):
        fail(f"weight {spec['name']} runs past the end of the shard")
    return arr.reshape(shape).copy(), size


# --------------------------------------------------------------------------------------------------
# 4. Keras layers -> ONNX graph.


def same_pads(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding along one axis: the odd pixel goes at the end (bottom/right)."""
    eff = (kernel - 1) * dilation + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def conv_out(in_size: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    eff = (kernel - 1) * dilation + 1
    return (in_size + before + after - eff) // stride + 1


class Builder:
    """Accumulates ONNX nodes and initializers; tracks each tensor's static shape (NCHW or NC)."""

    def __init__(self, layers: list[dict], weights: dict[str, np.ndarray], fold: bool):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.layers = {l["name"]: l for l in layers}
        self.order = [l["name"] for l in layers]
        self.weights = weights
        self.used_weights: set[str] = set()
        self.fold = fold
        self.nodes = []
        self.inits = []
        self.consts: set[str] = set()
        self.tensor: dict[str, str] = {}  # Keras layer name -> ONNX tensor holding its output
        self.shape: dict[str, list[int]] = {}  # ONNX tensor -> shape
        self.consumers: dict[str, list[str]] = {n: [] for n in self.order}
        for l in layers:
            for src in inbound(l):
                self.consumers[src].append(l["name"])
        self.pending_pad: dict[str, list[int]] = {}  # folded ZeroPadding2D -> [t, l, b, r]
        self.skip: set[str] = set()  # layers folded into an earlier node

    # -- helpers --------------------------------------------------------------------------------

    def weight(self, layer: str, name: str) -> np.ndarray:
        key = f"{layer}/{name}"
        if key not in self.weights:
            fail(f"layer {layer} needs weight {key}, which the manifest does not have")
        self.used_weights.add(key)
        return self.weights[key]

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, shape: list[int], name: str, **attrs):
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, **attrs))
        self.shape[output] = shape
        return output

    def input_of(self, layer: dict) -> str:
        srcs = inbound(layer)
        if len(srcs) != 1:
            fail(f"layer {layer['name']} ({layer['class_name']}) has {len(srcs)} inputs, not 1")
        return self.tensor[srcs[0]]

    def activation(self, name: str, kind: str | None, x: str, out: str) -> str:
        """Keras `activation` config (on Dense/Conv layers or the Activation layer)."""
        shape = self.shape[x]
        if kind in (None, "linear"):
            return x
        if kind == "relu":
            return self.node("Relu", [x], out, shape, f"{name}/relu")
        if kind == "relu6":
            return self.clip(name, x, out, 0.0, 6.0)
        if kind == "sigmoid":
            return self.node("Sigmoid", [x], out, shape, f"{name}/sigmoid")
        if kind == "tanh":
            return self.node("Tanh", [x], out, shape, f"{name}/tanh")
        if kind == "softmax":
            if len(shape) != 2:
                fail(f"{name}: softmax on a rank-{len(shape)} tensor is not supported")
            return self.node("Softmax", [x], out, shape, f"{name}/softmax", axis=-1)
        fail(f"{name}: unsupported activation {kind!r}")

    def scalar(self, value: float) -> str:
        """A shared float32 scalar initializer (Clip bounds)."""
        name = f"const/{value:g}"
        if name not in self.consts:
            self.consts.add(name)
            self.init(name, np.array(value, dtype=np.float32))
        return name

    def clip(self, name: str, x: str, out: str, lo: float, hi: float | None) -> str:
        ins = [x, self.scalar(lo)]
        if hi is not None:
            ins.append(self.scalar(hi))
        return self.node("Clip", ins, out, self.shape[x], f"{name}/clip")

    def foldable_bn(self, name: str) -> dict | None:
        """The BatchNormalization layer that is the only consumer of `name`, if folding is on."""
        cons = self.consumers[name]
        if not self.fold or len(cons) != 1:
            return None
        bn = self.layers[cons[0]]
        if bn["class_name"] != "BatchNormalization" or len(inbound(bn)) != 1:
            return None
        if bn["config"].get("axis", -1) not in (-1, 3, [3], [-1]):
            return None
        return bn

    def bn_params(self, bn: dict, channels: int):
        """(scale, shift) of an inference-mode batch norm, float64: y = x * scale + shift."""
        cfg, name = bn["config"], bn["name"]
        mean = self.weight(name, "moving_mean").astype(np.float64)
        var = self.weight(name, "moving_variance").astype(np.float64)
        gamma = self.weight(name, "gamma").astype(np.float64) if cfg.get("scale", True) else 1.0
        beta = self.weight(name, "beta").astype(np.float64) if cfg.get("center", True) else 0.0
        scale = np.broadcast_to(gamma / np.sqrt(var + float(cfg["epsilon"])), (channels,))
        shift = np.broadcast_to(beta - mean * scale, (channels,))
        return scale, shift

    # -- layers -----------------------------------------------------------------------------------

    def build(self):
        for name in self.order:
            if name in self.skip:
                continue
            layer = self.layers[name]
            handler = getattr(self, "layer_" + layer["class_name"], None)
            if handler is None:
                fail(f"layer {name}: unsupported class {layer['class_name']!r}")
            if layer["config"].get("data_format", "channels_last") != "channels_last":
                fail(f"layer {name}: only channels_last is supported")
            handler(layer)
        unused = sorted(set(self.weights) - self.used_weights)
        if unused:
            fail(f"weights not used by any layer: {unused}")

    def layer_InputLayer(self, layer):
        shape = layer["config"]["batch_input_shape"]
        if len(shape) != 4 or shape[3] != 3:
            fail(f"input shape {shape} is not NHWC with 3 channels")
        self.in_hw = (int(shape[1]), int(shape[2]))
        nhwc = [1, self.in_hw[0], self.in_hw[1], 3]
        self.shape[INPUT_NAME] = nhwc
        t = self.node(
            "Transpose", [INPUT_NAME], f"{layer['name']}/nchw", [1, 3, *self.in_hw],
            f"{layer['name']}/to_nchw", perm=[0, 3, 1, 2],
        )
        self.tensor[layer["name"]] = t

    def layer_ZeroPadding2D(self, layer):
        (t, b), (l, r) = normalise_padding(layer["config"]["padding"])
        x = self.input_of(layer)
        cons = self.consumers[layer["name"]]
        conv = ("Conv2D", "DepthwiseConv2D")
        if self.fold and len(cons) == 1 and self.layers[cons[0]]["class_name"] in conv:
            # The convolution takes these pads; it reads our input directly.
            self.pending_pad[cons[0]] = [t, l, b, r]
            self.tensor[layer["name"]] = x
            return
        n, c, h, w = self.shape[x]
        pads = self.init(f"{layer['name']}/pads", np.array([0, 0, t, l, 0, 0, b, r], np.int64))
        shape = [n, c, h + t + b, w + l + r]
        self.tensor[layer["name"]] = self.node(
            "Pad", [x, pads], layer["name"], shape, layer["name"], mode="constant"
        )

    def layer_Conv2D(self, layer):
        self.conv(layer, depthwise=False)

    def layer_DepthwiseConv2D(self, layer):
        self.conv(layer, depthwise=True)

    def conv(self, layer, depthwise: bool):
        cfg, name = layer["config"], layer["name"]
        x = self.input_of(layer)
        n, cin, h, w = self.shape[x]
        kh, kw = cfg["kernel_size"]
        sh, sw = cfg["strides"]
        dh, dw = cfg.get("dilation_rate", [1, 1])
        if depthwise:
            k = self.weight(name, "depthwise_kernel")  # [kh, kw, cin, multiplier]
            mult = k.shape[3]
            if k.shape[:3] != (kh, kw, cin) or mult != cfg.get("depth_multiplier", 1):
                fail(f"{name}: depthwise kernel shape {k.shape} does not match the layer")
            # TF's output channel c * mult + m -> ONNX group c, member m: [cin * mult, 1, kh, kw].
            wt = k.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, np.newaxis]
            cout, group = cin * mult, cin
        else:
            k = self.weight(name, "kernel")  # [kh, kw, cin, cout]
            cout = cfg["filters"]
            if k.shape != (kh, kw, cin, cout):
                fail(f"{name}: kernel shape {k.shape} does not match the layer")
            wt = k.transpose(3, 2, 0, 1)  # OIHW
            group = 1
        bias = self.weight(name, "bias") if cfg.get("use_bias", True) else None

        pt, pl, pb, pr = self.pending_pad.pop(name, [0, 0, 0, 0])
        if cfg["padding"] == "same":
            if (pt, pl, pb, pr) != (0, 0, 0, 0):
                fail(f"{name}: explicit padding before a 'same' convolution is not supported")
            pt, pb = same_pads(h, kh, sh, dh)
            pl, pr = same_pads(w, kw, sw, dw)
        elif cfg["padding"] != "valid":
            fail(f"{name}: padding {cfg['padding']!r} is not supported")
        oh = conv_out(h, kh, sh, dh, pt, pb)
        ow = conv_out(w, kw, sw, dw, pl, pr)

        out_name = name
        act = cfg.get("activation", "linear")
        bn = self.foldable_bn(name) if act in (None, "linear") else None
        if bn is not None:
            scale, shift = self.bn_params(bn, cout)
            b64 = bias.astype(np.float64) if bias is not None else np.zeros(cout)
            wt = (wt.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
            bias = (b64 * scale + shift).astype(np.float32)
            self.skip.add(bn["name"])
            out_name = bn["name"]  # the folded node produces the batch norm's output
        ins = [x, self.init(f"{name}/weight", wt.astype(np.float32))]
        if bias is not None:
            ins.append(self.init(f"{name}/bias", bias.astype(np.float32)))
        y = self.node(
            "Conv", ins, out_name if act in (None, "linear") else f"{name}/conv", [n, cout, oh, ow],
            name, kernel_shape=[kh, kw], strides=[sh, sw], dilations=[dh, dw],
            pads=[pt, pl, pb, pr], group=group,
        )
        y = self.activation(name, act, y, name)
        self.tensor[name] = y
        if bn is not None:
            self.tensor[bn["name"]] = y

    def layer_BatchNormalization(self, layer):
        # Not folded (its input is not a lone convolution): an ONNX BatchNormalization.
        cfg, name = layer["config"], layer["name"]
        if cfg.get("axis", -1) not in (-1, 3, [3], [-1]):
            fail(f"{name}: batch norm over axis {cfg.get('axis')} is not supported")
        x = self.input_of(layer)
        shape = self.shape[x]
        c = shape[1]
        ones, zeros = np.ones(c, np.float32), np.zeros(c, np.float32)
        gamma = self.weight(name, "gamma") if cfg.get("scale", True) else ones
        beta = self.weight(name, "beta") if cfg.get("center", True) else zeros
        ins = [
            x,
            self.init(f"{name}/gamma", gamma),
            self.init(f"{name}/beta", beta),
            self.init(f"{name}/moving_mean", self.weight(name, "moving_mean")),
            self.init(f"{name}/moving_variance", self.weight(name, "moving_variance")),
        ]
        self.tensor[name] = self.node(
            "BatchNormalization", ins, name, shape, name, epsilon=float(cfg["epsilon"])
        )

    def layer_ReLU(self, layer):
        cfg, name = layer["config"], layer["name"]
        if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
            fail(f"{name}: ReLU with negative_slope/threshold is not supported")
        x = self.input_of(layer)
        mx = cfg.get("max_value")
        if mx is None:
            y = self.node("Relu", [x], name, self.shape[x], name)
        else:
            y = self.clip(name, x, name, 0.0, float(mx))
        self.tensor[name] = y

    def layer_Activation(self, layer):
        x = self.input_of(layer)
        self.tensor[layer["name"]] = self.activation(
            layer["name"], layer["config"]["activation"], x, layer["name"]
        )

    def layer_Softmax(self, layer):
        axis = layer["config"].get("axis", -1)
        x = self.input_of(layer)
        if axis not in (-1, [-1]) or len(self.shape[x]) != 2:
            fail(f"{layer['name']}: only a softmax over the last axis of [N, C] is supported")
        self.tensor[layer["name"]] = self.activation(layer["name"], "softmax", x, layer["name"])

    def layer_Add(self, layer):
        name = layer["name"]
        ins = [self.tensor[s] for s in inbound(layer)]
        if len(ins) < 2 or any(self.shape[i] != self.shape[ins[0]] for i in ins):
            fail(f"{name}: Add needs two or more inputs of the same shape")
        y = ins[0]
        for i, other in enumerate(ins[1:]):
            out = name if i == len(ins) - 2 else f"{name}/{i}"
            y = self.node("Add", [y, other], out, self.shape[ins[0]], out)
        self.tensor[name] = y

    def layer_AveragePooling2D(self, layer):
        cfg, name = layer["config"], layer["name"]
        x = self.input_of(layer)
        n, c, h, w = self.shape[x]
        ph, pw = cfg["pool_size"]
        sh, sw = cfg.get("strides") or cfg["pool_size"]
        if cfg["padding"] != "valid":
            fail(f"{name}: only 'valid' average pooling is supported")
        oh, ow = (h - ph) // sh + 1, (w - pw) // sw + 1
        if (ph, pw) == (h, w):  # one window over the whole map
            y = self.node("GlobalAveragePool", [x], name, [n, c, 1, 1], name)
        else:
            y = self.node(
                "AveragePool", [x], name, [n, c, oh, ow], name,
                kernel_shape=[ph, pw], strides=[sh, sw],
            )
        self.tensor[name] = y

    def layer_GlobalAveragePooling2D(self, layer):
        name = layer["name"]
        x = self.input_of(layer)
        n, c, _, _ = self.shape[x]
        g = self.node("GlobalAveragePool", [x], f"{name}/pool", [n, c, 1, 1], f"{name}/pool")
        if layer["config"].get("keepdims"):
            fail(f"{name}: keepdims is not supported")
        self.tensor[name] = self.node("Flatten", [g], name, [n, c], name, axis=1)

    def layer_Flatten(self, layer):
        name = layer["name"]
        x = self.input_of(layer)
        shape = self.shape[x]
        if len(shape) == 2:
            self.tensor[name] = x
            return
        n, c, h, w = shape
        if h * w != 1:
            # Keras flattens NHWC: go back to that order first.
            x = self.node(
                "Transpose", [x], f"{name}/nhwc", [n, h, w, c], f"{name}/nhwc", perm=[0, 2, 3, 1]
            )
        self.tensor[name] = self.node("Flatten", [x], name, [n, c * h * w], name, axis=1)

    def layer_Dropout(self, layer):
        self.tensor[layer["name"]] = self.input_of(layer)  # identity at inference

    def layer_Dense(self, layer):
        cfg, name = layer["config"], layer["name"]
        x = self.input_of(layer)
        n, cin = self.shape[x]
        k = self.weight(name, "kernel")
        if k.shape != (cin, cfg["units"]):
            fail(f"{name}: kernel shape {k.shape} does not match the layer")
        ins = [x, self.init(f"{name}/kernel", k)]
        if cfg.get("use_bias", True):
            ins.append(self.init(f"{name}/bias", self.weight(name, "bias")))
        act = cfg.get("activation", "linear")
        pre = name if act in (None, "linear") else f"{name}/logits"
        y = self.node("Gemm", ins, pre, [n, cfg["units"]], name)
        self.tensor[name] = self.activation(name, act, y, name)


def inbound(layer: dict) -> list[str]:
    nodes = layer["inbound_nodes"]
    if len(nodes) > 1:
        fail(f"layer {layer['name']} is shared ({len(nodes)} call sites); not supported")
    if not nodes:
        return []
    # Keras 2 form: [[name, node_index, tensor_index, kwargs], ...]
    out = []
    for entry in nodes[0]:
        if entry[1] != 0 or entry[2] != 0:
            fail(f"layer {layer['name']}: multi-output inbound tensors are not supported")
        out.append(entry[0])
    return out


def normalise_padding(p) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(p, int):
        return (p, p), (p, p)
    a, b = p
    a = (a, a) if isinstance(a, int) else tuple(a)
    b = (b, b) if isinstance(b, int) else tuple(b)
    return a, b


def build_model(config: dict, weights: dict[str, np.ndarray], fold: bool, tarball_sha: str):
    import onnx
    from onnx import TensorProto, helper

    layers = config["layers"]
    if len(config["input_layers"]) != 1 or len(config["output_layers"]) != 1:
        fail("only single-input, single-output models are supported")
    b = Builder(layers, weights, fold)
    b.build()
    out_layer = config["output_layers"][0][0]
    final = b.tensor[out_layer]
    # Rename the final tensor to the public output name.
    for node in b.nodes:
        node.output[:] = [OUTPUT_NAME if o == final else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == final else i for i in node.input]
    if b.shape[final] != [1, len(LABELS)]:
        fail(f"output shape {b.shape[final]}, expected [1, {len(LABELS)}]")
    if b.nodes[-1].op_type != "Softmax":
        fail("the model does not end with a softmax")

    h, w = b.in_hw
    graph = helper.make_graph(
        b.nodes,
        "nsfwjs_mobilenetv2",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, h, w, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, len(LABELS)])],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=(
            f"nsfwjs {VERSION} MobileNetV2 (c) Infinite Red, Inc., MIT licence; converted from the "
            "TensorFlow.js layers model bundled in the npm package. Input NHWC RGB in [0, 1] "
            "(pixels / 255, bilinear resize with align_corners to 224x224); output softmax over "
            + ", ".join(LABELS) + "."
        ),
    )
    for k, v in (
        ("source", f"npm:{PACKAGE}@{VERSION}"),
        ("source_sha256", tarball_sha),
        ("license", "MIT"),
        ("labels", ",".join(LABELS)),
    ):
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--output", type=Path, default=OUTPUT, help="where to write the ONNX file")
    ap.add_argument(
        "--no-fold", action="store_true",
        help="keep batch norms and zero paddings as separate nodes (for debugging)",
    )
    args = ap.parse_args()

    root = fetch()
    print(f"convert: {TARBALL} sha256 {TARBALL_SHA256} (verified, with its model files)")
    config, weights = load_bundle(root)
    print(
        f"convert: {len(config['layers'])} layers, {len(weights)} weight tensors, "
        f"{sum(w.size for w in weights.values())} parameters"
    )
    model = build_model(config, weights, not args.no_fold, TARBALL_SHA256)
    data = model.SerializeToString()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, args.output)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"convert: {len(model.graph.node)} nodes, ops: {', '.join(ops)}")
    print(f"convert: wrote {args.output} ({len(data)} bytes)")
    digest = hashlib.sha256(data).hexdigest()
    print(f"convert: sha256 {digest}")
    # The conversion is deterministic: the manifest pins its output, and the runtime refuses any
    # other file. Say so here, where the cause is, rather than at load time.
    manifest = tomllib.loads((HERE / "model.toml").read_text())
    pinned = next(f["sha256"] for f in manifest["files"] if f["variant"] == "float")
    if args.output.resolve() == OUTPUT.resolve() and digest != pinned:
        fail(f"the converted file's sha256 is {digest}, but model.toml pins {pinned}")


if __name__ == "__main__":
    main()
