"""Convert the wheel's block-quantized SFace ONNX to TFLite (build-only).

Runs inside the build venv (tensorflow, onnx2tf, onnx, onnxruntime), never on
the device. Why each step: converters reject opset-21 blocked
``DequantizeLinear``, so weights are dequantized to float first; the
reshapes of those weights are folded and dangling graph inputs dropped, or
onnx2tf fails on the first Conv; every BatchNormalization is folded here in
float64 (see `fold_batchnorm`: TensorFlow's approximate rsqrt made the bytes
depend on the build CPU); onnx2tf wants a calibration sample file in the
working directory even for float output and would download one.

Usage: python convert_sface.py SRC.onnx WORKDIR [--prelu-rewrite] [--calib crops.npy]
Writes WORKDIR/sface_fp32.onnx and WORKDIR/out/*.tflite and prints JSON with
the functional check (cosine to onnxruntime on the given crops or noise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize_blocked(
    q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block: int
) -> np.ndarray:
    """(q - zero) * scale with scale/zero repeated ``block`` times along ``axis``."""
    n = q.shape[axis]
    s = np.repeat(scale, block, axis=axis).take(np.arange(n), axis=axis) if block else scale
    if zero is None:
        z = 0
    else:
        z = np.repeat(zero, block, axis=axis).take(np.arange(n), axis=axis) if block else zero
    return (q.astype(np.float32) - np.asarray(z, np.float32)) * s.astype(np.float32)


def to_float_graph(model: onnx.ModelProto, prelu_rewrite: bool) -> onnx.ModelProto:
    """Dequantize weights, fold constant reshapes, drop dangling inputs."""
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    new_nodes = []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and all(i in inits for i in node.input if i):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q = inits[node.input[0]]
            scale = inits[node.input[1]]
            zero = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            axis = attrs.get("axis", 1) % max(q.ndim, 1)
            block = attrs.get("block_size", 0)
            if not block and scale.ndim == 1 and q.ndim > 1 and scale.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                scale = scale.reshape(shape)
                zero = zero.reshape(shape) if zero is not None else None
            inits[node.output[0]] = dequantize_blocked(q, scale, zero, axis, block)
            continue
        if node.op_type == "Reshape" and node.input[0] in inits and node.input[1] in inits:
            inits[node.output[0]] = inits[node.input[0]].reshape(inits[node.input[1]].astype(int))
            continue
        new_nodes.append(node)
    new_nodes = fold_batchnorm(new_nodes, inits)
    if any(n.op_type == "BatchNormalization" for n in new_nodes):
        raise SystemExit(
            "a BatchNormalization was left unfolded: the build would depend on the CPU"
        )
    if prelu_rewrite:
        new_nodes = _rewrite_prelu(new_nodes, inits)
    used = {i for n in new_nodes for i in n.input} | {o.name for o in g.output}
    graph_inputs = [i for i in g.input if i.name not in inits and i.name in used]
    initializers = [
        numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items() if k in used
    ]
    graph = helper.make_graph(new_nodes, g.name, graph_inputs, list(g.output), initializers)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out.ir_version = 8
    onnx.checker.check_model(out)
    return out


def fold_batchnorm(nodes: list, inits: dict) -> list:
    """Fold every BatchNormalization into constants computed here, in float64.

    Why: onnx2tf lowers BatchNormalization to ``tf.nn.batch_normalization``,
    whose ``rsqrt`` TensorFlow computes with the CPU's approximate reciprocal
    square root (x86 RSQRTPS plus one Newton step: not correctly rounded, and
    the approximation table differs between CPU makers), so the folded
    weights, and the int8 rounding of a few of them, differed between an Intel
    and an AMD build machine. Here ``a = gamma / sqrt(var + eps)`` and
    ``b = beta - mean * a`` use IEEE-exact numpy operations: a Conv followed
    only by its BN gets ``W * a`` and ``(bias - mean) * a + beta``; any other
    BN becomes ``Mul(x, a)`` then ``Add(., b)`` with per-channel constants.
    """
    producers = {o: n for n in nodes for o in n.output}
    consumers: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    out: list = []
    folded: dict[str, str] = {}  # BN output -> Conv output that now carries it
    for n in nodes:
        if n.op_type != "BatchNormalization" or not all(i in inits for i in n.input[1:5]):
            out.append(n)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        eps = float(attrs.get("epsilon", 1e-5))
        gamma, beta, mean, var = (inits[i].astype(np.float64) for i in n.input[1:5])
        a = gamma / np.sqrt(var + np.float64(np.float32(eps)))
        b = beta - mean * a
        src = producers.get(n.input[0])
        if (
            src is not None
            and src.op_type == "Conv"
            and consumers.get(n.input[0]) == 1
            and src.input[1] in inits
        ):
            w = inits[src.input[1]].astype(np.float64)
            bias = (
                inits[src.input[2]].astype(np.float64)
                if len(src.input) > 2 and src.input[2]
                else np.zeros(w.shape[0])
            )
            wname, bname = f"{src.output[0]}__w_bn", f"{src.output[0]}__b_bn"
            inits[wname] = (w * a.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
            inits[bname] = ((bias - mean) * a + beta).astype(np.float32)
            x = src.input[0]
            del src.input[:]
            src.input.extend([x, wname, bname])
            folded[n.output[0]] = src.output[0]
            continue
        # NCHW feature maps broadcast per channel as (C, 1, 1); a Gemm's (N, C) as (C,).
        shape = (-1,) if src is not None and src.op_type == "Gemm" else (-1, 1, 1)
        aname, bname, mid = f"{n.output[0]}__a", f"{n.output[0]}__b", f"{n.output[0]}__ax"
        inits[aname] = a.astype(np.float32).reshape(shape)
        inits[bname] = b.astype(np.float32).reshape(shape)
        out += [
            helper.make_node("Mul", [n.input[0], aname], [mid]),
            helper.make_node("Add", [mid, bname], [n.output[0]]),
        ]
    for n in out:  # consumers of a folded BN read the Conv's output instead
        for k, name in enumerate(n.input):
            if name in folded:
                n.input[k] = folded[name]
    return out


def _rewrite_prelu(nodes: list, inits: dict) -> list:
    """PRelu(x, a) -> Relu(x) + a * Min(x, 0): ops every int8 kernel set has."""
    out = []
    for n in nodes:
        if n.op_type != "PRelu":
            out.append(n)
            continue
        x, slope = n.input
        y = n.output[0]
        zname = f"{y}__zero"
        inits[zname] = np.zeros((), np.float32)
        if slope in inits:
            a = inits[slope]
            inits[slope] = a.reshape(-1, 1, 1) if a.ndim == 1 else a
        out += [
            helper.make_node("Relu", [x], [f"{y}__pos"]),
            helper.make_node("Min", [x, zname], [f"{y}__negx"]),
            helper.make_node("Mul", [f"{y}__negx", slope], [f"{y}__neg"]),
            helper.make_node("Add", [f"{y}__pos", f"{y}__neg"], [y]),
        ]
    return out


def tflite_embed(path: Path, crops: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for c in crops:
        x = c[None].astype(np.float32)
        if inp["dtype"] != np.float32:
            s, z = inp["quantization"]
            x = np.clip(np.round(x / s) + z, -128, 127).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"]).astype(np.float32).reshape(-1)
        if out["dtype"] != np.float32:
            s, z = out["quantization"]
            y = (y - z) * s
        res.append(y)
    return np.stack(res)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("work")
    ap.add_argument("--prelu-rewrite", action="store_true")
    ap.add_argument("--calib", help="NHWC float32 0..255 aligned crops for full int8")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = to_float_graph(onnx.load(args.src), args.prelu_rewrite)
    fp32 = work / "sface_fp32.onnx"
    onnx.save(model, fp32)

    import onnxruntime as ort

    src = onnx.load(args.src)
    used = {i for n in src.graph.node for i in n.input}
    keep = [i for i in src.graph.input if i.name in used]
    del src.graph.input[:]
    src.graph.input.extend(keep)  # the wheel lists every weight as a dangling input
    ref_q = ort.InferenceSession(src.SerializeToString(), providers=["CPUExecutionProvider"])
    ref_f = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    if args.calib:
        crops = np.load(args.calib).astype(np.float32)
    else:
        crops = np.random.default_rng(0).uniform(0, 255, (8, 112, 112, 3)).astype(np.float32)
    check = crops[:16]
    nchw = check.transpose(0, 3, 1, 2).copy()
    e_q = np.concatenate([ref_q.run(None, {"data": x[None]})[0] for x in nchw])
    e_f = np.concatenate([ref_f.run(None, {"data": x[None]})[0] for x in nchw])

    # onnx2tf reads this before trying to download its own sample.
    np.save(
        work / "calibration_image_sample_data_20x128x128x3_float32.npy",
        np.random.default_rng(0).uniform(0, 1, (20, 128, 128, 3)).astype(np.float32),
    )
    cmd = [sys.executable, "-m", "onnx2tf", "-i", fp32.name, "-o", "out", "-odrqt"]
    if args.calib:
        cmd += [
            "-oiqt",
            "-qt",
            "per-channel",
            "-cind",
            "data",
            str(Path(args.calib).resolve()),
            "[[[[0,0,0]]]]",
            "[[[[1,1,1]]]]",
        ]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(cmd, cwd=work, check=True, env=env, stdout=subprocess.DEVNULL)

    def cos(a: np.ndarray, b: np.ndarray) -> list[float]:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        c = (a * b).sum(1)
        return [float(c.min()), float(c.mean())]

    report = {"onnx_float_vs_quant": cos(e_f, e_q), "tflite": {}}
    for f in sorted((work / "out").glob("*.tflite")):
        report["tflite"][f.name] = cos(tflite_embed(f, check), e_f)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
