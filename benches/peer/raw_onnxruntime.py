"""The fastest plain call of ONNX Runtime, for the scorer benchmark to compare against:
Python's onnxruntime (the same library sluice loads), one session with one intra-op
thread, scoring the rows sluice's benchmark prepared (float32, row-major) in batches.

    raw_onnxruntime.py MODEL.onnx ROWS.f32 WIDTH BATCH [BATCH...]

Prints one line per batch size: `batch <n> <rows per second>`. With SLUICE_START_AT set (a
Unix time in seconds), it starts measuring at that moment, after loading and warming up: so
that several processes started together measure the same span.
"""
import os
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    model, rows_file, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batches = [int(b) for b in sys.argv[4:]]
    rows = np.fromfile(rows_file, dtype=np.float32).reshape(-1, width)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    start_at = float(os.environ.get("SLUICE_START_AT", "0"))
    for batch in batches:
        chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
        session.run(None, {name: chunks[0]})  # warm-up
        if start_at > time.time():
            time.sleep(start_at - time.time())
        started = time.perf_counter()
        for chunk in chunks:
            session.run(None, {name: chunk})
        elapsed = time.perf_counter() - started
        print(f"batch {batch} {len(rows) / elapsed:.0f}", flush=True)


if __name__ == "__main__":
    main()
