#!/usr/bin/env python3
"""Trains the card-fraud classifier the classifier example and tests use: a gradient-boosted
classifier over synthetic card transactions, exported to ONNX with plain tensors
(`zipmap: False`): `label` (int64) and `probabilities` (float32, one column per class).
Writes the model, its descriptor, a few transactions (transactions.jsonl), the
Python-side predictions for them (expected-predictions.jsonl) and what scikit-learn says of
those predictions against the true outcomes (expected-quality.json; `--quality-only` writes
just that, from the committed files), and the ground-truth demo's challenger (v2), stream and
chargebacks (`--challenger-only` writes just those).

Needs scikit-learn, skl2onnx, onnxruntime and numpy:
    python examples/fraud/train.py
"""
import hashlib
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingClassifier

HERE = pathlib.Path(__file__).resolve().parent
MODELS = HERE / "models"
MERCHANTS = ["grocery", "fuel", "online", "travel", "electronics", "restaurant"]
NUMERIC = ["amount", "hour", "distance_km", "card_present", "foreign", "tx_last_hour"]
FEATURES = NUMERIC + ["merchant"]


def transactions(n, seed, skimming=False):
    """Synthetic card transactions. With `skimming`, fraud has moved on: cloned cards used in
    person at fuel stations, restaurants and groceries, the pattern a model trained before it
    misses."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        merchant = MERCHANTS[rng.integers(len(MERCHANTS))]
        amount = float(round(rng.lognormal(3.5, 1.1), 2))
        hour = int(rng.integers(0, 24))
        distance = float(round(rng.exponential(15.0), 1))
        card_present = bool(rng.random() < 0.6)
        foreign = bool(rng.random() < 0.08)
        velocity = int(rng.poisson(1.2))
        score = (-5.0 + 0.9 * np.log1p(amount) * (merchant in ("online", "electronics", "travel"))
                 + 1.2 * foreign + 0.04 * distance + 0.5 * velocity - 1.5 * card_present
                 + 0.8 * (hour < 5))
        if skimming:
            score += 4.5 * card_present * (merchant in ("fuel", "restaurant", "grocery")) - 1.5
        fraud = bool(rng.random() < 1.0 / (1.0 + np.exp(-score)))
        out.append({"tx_id": f"tx-{seed}-{i + 1}", "amount": amount, "hour": hour, "distance_km": distance,
                    "card_present": card_present, "foreign": foreign, "tx_last_hour": velocity,
                    "merchant": merchant, "fraud": fraud})
    return out


def matrix(rows):
    x = np.zeros((len(rows), len(FEATURES)), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, f in enumerate(NUMERIC):
            x[i, j] = float(r[f])
        x[i, len(NUMERIC)] = MERCHANTS.index(r["merchant"])
    return x


def write_expected_quality():
    """What scikit-learn says of v1's answers on the sample against the true outcomes: the
    figures sluice's evaluator must report for the same answers (expected-quality.json)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import (accuracy_score, f1_score, log_loss, precision_score, recall_score,
                                 roc_auc_score)
    truth = {}
    for line in open(HERE / "transactions.jsonl"):
        r = json.loads(line)
        truth[r["tx_id"]] = int(r["fraud"])
    rows = [json.loads(line) for line in open(HERE / "expected-predictions.jsonl")]
    y = np.array([truth[r["tx_id"]] for r in rows])
    # The scorer writes float32 probabilities; read back as JSON they are these doubles.
    p = np.array([float(np.float32(r["probabilities"][1])) for r in rows])
    predicted = (p >= 0.5).astype(int)
    observed, mean_predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    quality = {
        "model": "card-fraud", "version": "1", "threshold": 0.5, "labelled": int(len(y)),
        "accuracy": accuracy_score(y, predicted), "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0), "f1": f1_score(y, predicted, zero_division=0),
        "log_loss": log_loss(y, p), "roc_auc": roc_auc_score(y, p),
        "calibration": {"observed": observed.tolist(), "mean_predicted": mean_predicted.tolist()},
    }
    (HERE / "expected-quality.json").write_text(json.dumps(quality, indent=2) + "\n")


def export(model, version, description):
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
                          options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    data = onx.SerializeToString()
    (MODELS / f"card-fraud-v{version}.onnx").write_bytes(data)
    descriptor = {
        "name": "card-fraud", "version": version, "format": "onnx", "location": f"card-fraud-v{version}.onnx",
        "sha256": hashlib.sha256(data).hexdigest(), "created": "2026-12-01T00:00:00Z",
        "description": description,
        "inputs": [{"name": "features", "type": "float32", "shape": [None, len(FEATURES)], "features": FEATURES}],
        "outputs": [{"name": "label", "type": "int64", "shape": [None]},
                    {"name": "probabilities", "type": "float32", "shape": [None, 2]}],
    }
    (MODELS / f"card-fraud-v{version}.model.json").write_text(json.dumps(descriptor, indent=2) + "\n")


def write_challenger_and_stream():
    """The ground-truth demo: v2, a challenger trained after fraud moved to skimmed cards,
    a stream of transactions to score (stream.jsonl, without their outcome) and the
    chargebacks that say which were fraud (chargebacks.jsonl: one per transaction, but for
    some that never come)."""
    train = transactions(30000, seed=6, skimming=True)
    x, y = matrix(train), np.array([int(r["fraud"]) for r in train])
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=4).fit(x, y)
    export(model, "2", "GBM classifier, 60 trees of depth 3, retrained once card skimming began; classes 0 and 1")
    stream = transactions(8000, seed=79, skimming=True)
    rng = np.random.default_rng(80)
    with open(HERE / "stream.jsonl", "w") as tx, open(HERE / "chargebacks.jsonl", "w") as cb:
        for r in stream:
            tx.write(json.dumps({k: v for k, v in r.items() if k != "fraud"}) + "\n")
            if rng.random() >= 0.03:
                cb.write(json.dumps({"tx_id": r["tx_id"], "fraud": r["fraud"]}) + "\n")
    xs, ys = matrix(stream), np.array([int(r["fraud"]) for r in stream])
    from sklearn.metrics import roc_auc_score
    for version in ("1", "2"):
        p = ort.InferenceSession(str(MODELS / f"card-fraud-v{version}.onnx")).run(None, {"features": xs})[1][:, 1]
        print(f"card-fraud v{version}: ROC AUC on the stream {roc_auc_score(ys, p):.4f}")


def main():
    if "--quality-only" in sys.argv:
        write_expected_quality()
        return
    if "--challenger-only" in sys.argv:
        write_challenger_and_stream()
        return
    MODELS.mkdir(exist_ok=True)
    train = transactions(30000, seed=5)
    x, y = matrix(train), np.array([int(r["fraud"]) for r in train])
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=3).fit(x, y)
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
                          options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    data = onx.SerializeToString()
    (MODELS / "card-fraud-v1.onnx").write_bytes(data)
    descriptor = {
        "name": "card-fraud", "version": "1", "format": "onnx", "location": "card-fraud-v1.onnx",
        "sha256": hashlib.sha256(data).hexdigest(), "created": "2026-11-21T00:00:00Z",
        "description": "GBM classifier, 60 trees of depth 3; classes 0 (legitimate) and 1 (fraud)",
        "inputs": [{"name": "features", "type": "float32", "shape": [None, len(FEATURES)], "features": FEATURES}],
        "outputs": [{"name": "label", "type": "int64", "shape": [None]},
                    {"name": "probabilities", "type": "float32", "shape": [None, 2]}],
    }
    (MODELS / "card-fraud-v1.model.json").write_text(json.dumps(descriptor, indent=2) + "\n")
    sample = transactions(300, seed=77)
    label, proba = ort.InferenceSession(str(MODELS / "card-fraud-v1.onnx")).run(None, {"features": matrix(sample)})
    with open(HERE / "transactions.jsonl", "w") as f:
        for r in sample:
            f.write(json.dumps(r) + "\n")
    with open(HERE / "expected-predictions.jsonl", "w") as f:
        for r, l, p in zip(sample, label, proba):
            f.write(json.dumps({"tx_id": r["tx_id"], "label": int(l), "probabilities": [float(v) for v in p]}) + "\n")
    write_expected_quality()
    write_challenger_and_stream()
    print(f"card-fraud v1: accuracy on the sample {np.mean(label == np.array([int(r['fraud']) for r in sample])):.3f}")


if __name__ == "__main__":
    main()
