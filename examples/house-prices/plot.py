#!/usr/bin/env python3
"""Draws what the retraining demo did: each model version's MAE over time (a rolling window of
its judged answers), with the drift, the training run and the promotion marked.

    python examples/house-prices/plot.py out/retraining        # writes out/retraining/retraining.png

Reads what the pipeline wrote there: judged.jsonl (each prediction beside the sale price),
drift.jsonl (the validator's drift events), runs.jsonl (the trainer's run events) and
model-audit.jsonl (the scorer's model lifecycle). Needs matplotlib (scripts/setup-training.sh).
"""
import datetime
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WINDOW = 300  # judged answers per point of a version's rolling MAE


def lines(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def when(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main():
    folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "out/retraining")
    judged = lines(folder / "judged.jsonl")
    if not judged:
        sys.exit(f"{folder / 'judged.jsonl'} holds no judged answers: run the pipeline first")
    start = min(when(r["judged_at"]) for r in judged)

    # Per version, the rolling MAE of its answers (one answer per listing: a version that
    # answered as the serving model and as a shadow gave the same answer twice).
    per_version = {}
    for r in judged:
        version = r["_model"]["version"]
        seen = per_version.setdefault(version, {"ids": set(), "t": [], "err": []})
        if r["id"] in seen["ids"]:
            continue
        seen["ids"].add(r["id"])
        seen["t"].append(when(r["judged_at"]) - start)
        seen["err"].append(abs(r["error"]))

    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=110)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    for i, (version, s) in enumerate(sorted(per_version.items(), key=lambda kv: int(kv[0]))):
        xs, ys, total = [], [], 0.0
        for k, e in enumerate(s["err"]):
            total += e
            if k >= WINDOW:
                total -= s["err"][k - WINDOW]
            if k + 1 >= min(WINDOW, 50):
                xs.append(s["t"][k])
                ys.append(total / min(k + 1, WINDOW) / 1000.0)
        ax.plot(xs, ys, color=colours[i % len(colours)], linewidth=2,
                label=f"v{version} (MAE over its last {WINDOW} answers)")

    def mark(t, text, colour, row):
        ax.axvline(t - start, color=colour, linestyle="--", linewidth=1.2)
        ax.annotate(text, xy=(t - start, 1), xycoords=("data", "axes fraction"),
                    xytext=(4, -14 - 16 * row), textcoords="offset points", color=colour, fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.9))

    drift = [d for d in lines(folder / "drift.jsonl") if d.get("status") == "drifting"]
    if drift:
        first = min(drift, key=lambda d: d["at"])
        mark(when(first["at"]), f"drift ({first['field']}, PSI {first['psi']:.2f})", "#7f7f7f", 0)
    for run in lines(folder / "runs.jsonl"):
        if run["event"] == "started":
            mark(when(run["at"]), f"training run {run['run']} ({run['dataset']['rows']} rows)", "#ff7f0e", 1)
        elif run["event"] == "published":
            mark(when(run["at"]), f"v{run['version']} published", "#2ca02c", 2)
        elif run["event"] == "failed":
            mark(when(run["at"]), f"run {run['run']} failed", "#d62728", 2)
    for event in lines(folder / "model-audit.jsonl"):
        if event["event"] in ("promoted", "rolled_back") and not event.get("restored"):
            mark(when(event["at"]), f"v{event['version']} {event['event'].replace('_', ' ')}", "#9467bd", 3)

    ax.set_xlabel("seconds since the first judged answer (an answer is judged when its sale comes, 2 s after it was scored)")
    ax.set_ylabel("mean absolute error (thousand $)")
    ax.set_title("House prices: the market shifts, drift starts a training run, the new version is promoted")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left")
    fig.tight_layout()
    out = folder / "retraining.png"
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
