#!/usr/bin/env python3
"""Builds the small ONNX models the serving-strategy tests use, with known answers:

- slow-price: a linear house-price model (the answer is a known weighted sum of the 21
  house-price features) that also runs a chain of 512x512 matrix products which depend on
  its input, so it is slow whatever the batch size: it exercises the speculative budget.
- always-fraud / never-fraud: classifiers over the 7 card-fraud features that answer
  label 1 with probabilities [0.1, 0.9], and label 0 with [0.6, 0.4], for every row.

Needs onnx and numpy:  python examples/strategies/make_models.py
"""
import hashlib
import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = pathlib.Path(__file__).resolve().parent
MODELS = HERE / "models"
PRICE_WEIGHTS = [20000.0, 15000.0, 180.0, 0.5, 5000.0, 150000.0, 25000.0, 9000.0, 100.0, 10.0] + [30000.0] * 11
PRICE_BIAS = -150000.0
CHAIN = 40  # 512x512 products: about 11 GFLOP whatever the batch


def save(model, name, description, inputs, outputs):
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    (MODELS / f"{name}-v1.onnx").write_bytes(data)
    descriptor = {"name": name, "version": "1", "format": "onnx", "location": f"{name}-v1.onnx",
                  "sha256": hashlib.sha256(data).hexdigest(), "created": "2026-11-21T00:00:00Z",
                  "description": description, "inputs": inputs, "outputs": outputs}
    (MODELS / f"{name}-v1.model.json").write_text(json.dumps(descriptor, indent=2) + "\n")


def slow_price():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(np.array(PRICE_WEIGHTS, dtype=np.float32).reshape(21, 1), "w")
    b = numpy_helper.from_array(np.array([PRICE_BIAS], dtype=np.float32), "b")
    m = numpy_helper.from_array((rng.standard_normal((512, 512)) / 23).astype(np.float32), "m")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    nodes = [
        helper.make_node("MatMul", ["features", "w"], ["linear"]),
        helper.make_node("Add", ["linear", "b"], ["price"]),
        # h0 = m * (1 + 0 * mean(features)): depends on the input, so it cannot be folded away.
        helper.make_node("ReduceMean", ["features"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["m", "nothing"], ["h0"]),
    ]
    for i in range(CHAIN):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "m"], [f"p{i}"]))
        nodes.append(helper.make_node("Tanh", [f"p{i}"], [f"h{i + 1}"]))
    nodes += [
        helper.make_node("ReduceSum", [f"h{CHAIN}"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["still_nothing"]),
        helper.make_node("Add", ["price", "still_nothing"], ["variable"]),
    ]
    graph = helper.make_graph(
        nodes, "slow_price",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 21])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        initializer=[w, b, m, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, "slow-price", f"linear price, plus {CHAIN} chained 512x512 products to be slow",
         [{"name": "features", "type": "float32", "shape": [None, 21]}],
         [{"name": "variable", "type": "float32", "shape": [None, 1]}])


def constant_classifier(name, label, probabilities):
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    p = numpy_helper.from_array(np.array([probabilities], dtype=np.float32), "p")
    l = numpy_helper.from_array(np.array([float(label)], dtype=np.float32), "l")
    nodes = [
        helper.make_node("ReduceSum", ["features"], ["sum"], axes=None, keepdims=1) if False else
        helper.make_node("ReduceSum", ["features", "axis"], ["sum"], keepdims=1),
        helper.make_node("Mul", ["sum", "zero"], ["zeros"]),          # [N, 1] of 0
        helper.make_node("Add", ["zeros", "p"], ["probabilities"]),   # [N, 2]
        helper.make_node("Add", ["zeros", "l"], ["label_f"]),         # [N, 1]
        helper.make_node("Squeeze", ["label_f", "axis"], ["label_s"]),
        helper.make_node("Cast", ["label_s"], ["label"], to=TensorProto.INT64),
    ]
    axis = numpy_helper.from_array(np.array([1], dtype=np.int64), "axis")
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 7])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        initializer=[zero, p, l, axis])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, name, f"answers {label} with probabilities {probabilities} for every transaction",
         [{"name": "features", "type": "float32", "shape": [None, 7]}],
         [{"name": "label", "type": "int64", "shape": [None]},
          {"name": "probabilities", "type": "float32", "shape": [None, 2]}])


def main():
    MODELS.mkdir(exist_ok=True)
    slow_price()
    constant_classifier("always-fraud", 1, [0.1, 0.9])
    constant_classifier("never-fraud", 0, [0.6, 0.4])
    (HERE / "slow-price-weights.json").write_text(json.dumps({"weights": PRICE_WEIGHTS, "bias": PRICE_BIAS}) + "\n")


if __name__ == "__main__":
    main()
