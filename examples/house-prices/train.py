#!/usr/bin/env python3
"""Trains the house-price models the examples and tests use, and writes them as data:
an ONNX file plus a descriptor (name, version, sha256, created, description, input and
output spec) for each version, and the Python-side predictions of both versions for a
held-out set of listings, which the tests compare sluice's predictions with.

Needs scikit-learn, skl2onnx, onnxruntime and numpy (pip install them in a venv):
    python examples/house-prices/train.py
The committed .onnx files are what this wrote; tests never train. It also writes each
version's training profile (per field: range, nulls, mean, spread, histogram or category
shares) for the validator's profile and drift checks (`--profile-only` writes just those).

Retraining in the loop: `train.py --dataset DIR --out DIR` trains on a dataset folder sluice
wrote (its dataset sink) and writes model.onnx, metrics.json and profile.json into --out.
"""
import hashlib
import sys
import json
import pathlib

import numpy as np
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import GradientBoostingRegressor

HERE = pathlib.Path(__file__).resolve().parent
MODELS = HERE / "models"

# The same cities, zip codes and price levels as sluice's listing generator.
CITIES = [
    ("Seattle", "WA 98103", 1.45), ("Seattle", "WA 98115", 1.38), ("Bellevue", "WA 98004", 1.9),
    ("Redmond", "WA 98052", 1.55), ("Kirkland", "WA 98033", 1.6), ("Renton", "WA 98056", 0.95),
    ("Kent", "WA 98042", 0.8), ("Auburn", "WA 98092", 0.75), ("Issaquah", "WA 98027", 1.3),
    ("Shoreline", "WA 98155", 1.05), ("Tacoma", "WA 98406", 0.7), ("Everett", "WA 98208", 0.85),
]
CITY_NAMES = sorted({c for c, _, _ in CITIES})
NUMERIC = ["bedrooms", "bathrooms", "sqft_living", "sqft_lot", "floors", "waterfront",
           "view", "condition", "yr_built", "yr_renovated"]
FEATURES = NUMERIC + [f"city={c}" for c in CITY_NAMES]


def listings(n, seed):
    """Listings like sluice's generator makes, with a price that depends on them plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        city, statezip, premium = CITIES[rng.integers(len(CITIES))]
        bedrooms = int(rng.integers(1, 7))
        bathrooms = float(rng.integers(2, bedrooms * 2 + 2)) * 0.5 + 0.5
        sqft_living = int(400 + bedrooms * rng.integers(250, 550))
        sqft_lot = int(sqft_living + rng.integers(500, 12000))
        floors = float([1.0, 1.5, 2.0, 2.5, 3.0][rng.integers(5)])
        waterfront = bool(rng.random() < 0.02)
        view = int(rng.integers(2, 5) if waterfront else rng.integers(0, 3))
        condition = int(rng.integers(1, 6))
        yr_built = int(rng.integers(1900, 2025))
        yr_renovated = int(rng.integers(yr_built, 2025)) if rng.random() < 0.2 else 0
        age_discount = 1.0 - 0.0015 * (2025 - max(yr_built, yr_renovated))
        price = (sqft_living * 260.0 * premium * (1.25 if waterfront else 1.0) * age_discount
                 + view * 30000.0 + condition * 8000.0 + bathrooms * 12000.0
                 + rng.normal(0, 40000.0))
        out.append({
            "id": i + 1, "bedrooms": bedrooms, "bathrooms": bathrooms, "sqft_living": sqft_living,
            "sqft_lot": sqft_lot, "floors": floors, "waterfront": waterfront, "view": view,
            "condition": condition, "yr_built": yr_built, "yr_renovated": yr_renovated,
            "city": city, "statezip": statezip, "country": "USA", "price": round(max(price, 75000.0)),
        })
    return out


def matrix(rows):
    """The feature matrix in the order the scorer's feature mapping declares."""
    x = np.zeros((len(rows), len(FEATURES)), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, f in enumerate(NUMERIC):
            x[i, j] = float(r[f])
        x[i, len(NUMERIC) + CITY_NAMES.index(r["city"])] = 1.0
    return x


def histogram(values, bins=10):
    """Equal-width bins over the training range, with the share of values in each."""
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": [float(e) for e in edges], "fractions": [float(c) / len(values) for c in counts]}


def write_profile(rows, version):
    """The training profile the validator checks records and drift against."""
    profile = profile_of(rows, version)
    (MODELS / f"house-price-v{version}.profile.json").write_text(json.dumps(profile, indent=2) + "\n")


def export(model, version, description):
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
                          target_opset={"": 17, "ai.onnx.ml": 3})
    data = onx.SerializeToString()
    onnx_file = MODELS / f"house-price-v{version}.onnx"
    onnx_file.write_bytes(data)
    descriptor = {
        "name": "house-price",
        "version": str(version),
        "format": "onnx",
        "location": onnx_file.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "created": "2026-11-21T00:00:00Z",
        "description": description,
        "inputs": [{"name": "features", "type": "float32", "shape": [None, len(FEATURES)], "features": FEATURES}],
        "outputs": [{"name": "variable", "type": "float32", "shape": [None, 1]}],
    }
    (MODELS / f"house-price-v{version}.model.json").write_text(json.dumps(descriptor, indent=2) + "\n")
    return onnx_file


def write_expected_quality():
    """What scikit-learn says of each version's answers on the held-out listings against their
    sale prices: the figures sluice's evaluator must report (expected-quality.json)."""
    from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, mean_squared_error
    rows = [json.loads(line) for line in open(HERE / "expected-predictions.jsonl")]
    y = np.array([float(r["price"]) for r in rows])
    quality = {}
    for version in ("1", "2"):
        p = np.array([float(np.float32(r["expected"][version])) for r in rows])
        quality[version] = {
            "labelled": int(len(y)), "mae": mean_absolute_error(y, p),
            "rmse": float(np.sqrt(mean_squared_error(y, p))),
            "mape": mean_absolute_percentage_error(y, p), "mean_error": float(np.mean(p - y)),
        }
    (HERE / "expected-quality.json").write_text(json.dumps(quality, indent=2) + "\n")


def profile_of(rows, version):
    """The training profile of `rows`: what the validator checks records and drift against."""
    fields = {}
    for f in NUMERIC:
        values = np.array([float(r.get(f) or 0) for r in rows])
        if f == "waterfront":
            share = float(np.mean(values))
            fields[f] = {"type": "category", "null_rate": 0.0, "categories": {"true": share, "false": 1.0 - share}}
            continue
        fields[f] = {"type": "number", "null_rate": 0.0, "min": float(values.min()), "max": float(values.max()),
                     "mean": float(values.mean()), "std": float(values.std()), "histogram": histogram(values)}
    cities = [r["city"] for r in rows]
    fields["city"] = {"type": "category", "null_rate": 0.0,
                      "categories": {c: cities.count(c) / len(cities) for c in CITY_NAMES}}
    return {"model": "house-price", "version": str(version), "records": len(rows), "fields": fields}


def train_from_dataset(dataset, out):
    """Retrains on a dataset folder sluice wrote (a manifest and JSON lines shards of labelled
    listings: their fields, and the true sale price as `label`): writes `model.onnx`,
    `metrics.json` (rows, training MAE, the dataset's sha256) and `profile.json` into `out`.
    Small on purpose (150 shallow trees), so that it trains in a second or two."""
    dataset, out = pathlib.Path(dataset), pathlib.Path(out)
    manifest = json.loads((dataset / "manifest.json").read_text())
    # One example per listing: a listing judged for two versions (a shadow's and the serving
    # one's answers) is in the dataset twice, with the same features and the same label.
    by_id, rows = {}, []
    for shard in manifest["shards"]:
        for line in open(dataset / shard["file"]):
            r = json.loads(line)
            if r.get("city") in CITY_NAMES and r.get("label") is not None:
                r.setdefault("yr_renovated", 0)
                if r.get("id") is None:
                    rows.append(r)
                else:
                    by_id[r["id"]] = r
    rows += list(by_id.values())
    if len(rows) < 10:
        sys.exit(f"{len(rows)} usable rows in {dataset}: too few to train on")
    x, y = matrix(rows), np.array([float(r["label"]) for r in rows], dtype=np.float32)
    model = GradientBoostingRegressor(n_estimators=150, max_depth=4, learning_rate=0.15, random_state=7).fit(x, y)
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, len(FEATURES)]))],
                          target_opset={"": 17, "ai.onnx.ml": 3})
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    mae = float(np.mean(np.abs(model.predict(x) - y)))
    (out / "metrics.json").write_text(json.dumps({"rows": len(rows), "train_mae": mae,
                                                  "dataset_sha256": manifest["sha256"]}, indent=2) + "\n")
    (out / "profile.json").write_text(json.dumps(profile_of(rows, "retrained"), indent=2) + "\n")
    print(f"trained on {len(rows)} rows, training MAE {mae:,.0f}")


def main():
    if "--dataset" in sys.argv:
        args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        train_from_dataset(args["--dataset"], args["--out"])
        return
    if "--quality-only" in sys.argv:
        write_expected_quality()
        return
    MODELS.mkdir(exist_ok=True)
    train = listings(20000, seed=11)
    write_profile(train, 1)
    write_profile(train[:15000], 2)
    if "--profile-only" in sys.argv:
        return
    x, y = matrix(train), np.array([r["price"] for r in train], dtype=np.float32)
    v1 = GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=1).fit(x, y)
    v2 = GradientBoostingRegressor(n_estimators=120, max_depth=4, learning_rate=0.08,
                                   subsample=0.8, random_state=2).fit(x[:15000], y[:15000])
    files = {
        "1": export(v1, 1, "GBM, 50 trees of depth 3, on 20k listings"),
        "2": export(v2, 2, "GBM, 120 trees of depth 4, subsampled, on 15k listings"),
    }
    held_out = listings(200, seed=99)
    xs = matrix(held_out)
    with open(HERE / "expected-predictions.jsonl", "w") as f:
        preds = {}
        for version, path in files.items():
            sess = ort.InferenceSession(str(path))
            preds[version] = sess.run(None, {"features": xs})[0].reshape(-1)
        for i, r in enumerate(held_out):
            r = dict(r)
            r["expected"] = {v: float(p[i]) for v, p in preds.items()}
            f.write(json.dumps(r) + "\n")
    write_expected_quality()
    for version, model in (("1", v1), ("2", v2)):
        err = np.mean(np.abs(model.predict(xs) - np.array([r["price"] for r in held_out])))
        print(f"house-price v{version}: mean absolute error on held-out listings {err:,.0f}")


if __name__ == "__main__":
    main()
