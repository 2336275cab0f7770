"""bench/matrix/peer.py — the seed's own approach to simulate-performance and
recommend-hardware (GreenMatrix 003 §7), as the peer of Grove's analytical
model in bench/matrix/latency.sh: a FastAPI app whose requests are
answered by a learned regressor, an scikit-learn preprocessing pipeline
(scaling, one-hot encoding) in front of an XGBoost regressor, trained at
start on the same calibration set Grove fits its factors on
(src/apps/matrix/data/calibration.tsv) and predicting per request.

Served by uvicorn's own multi-process supervisor, as `uvicorn --workers N`
runs it, from `python3 bench/matrix/peer.py --port P --workers N` (below):
the one difference is the listening socket, made with IPPROTO_TCP. uvicorn
0.17 (Debian's) up to the current release binds it with proto 0 for
--workers > 1 (and for gunicorn's worker); accepted sockets inherit that,
and asyncio turns TCP_NODELAY on only for proto IPPROTO_TCP, so with Nagle
on, each keep-alive answer's body (written after its headers) waits for the
client's delayed ACK: ~40 ms a request on Linux
(https://github.com/Kludex/uvicorn/issues/3149, fixed upstream by passing
the proto). `--workers 1` is not affected (asyncio binds by getaddrinfo).
MATRIX_DATA names the catalogue folder (default src/apps/matrix/data).
The figures it answers are only as good as 29 training rows allow; the
benchmark measures what answering costs, not its accuracy (bench/matrix/run.sh
reports the analytical model's cross-validated error)."""

import csv
import math
import os
import re

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import XGBRegressor

DATA = os.environ.get("MATRIX_DATA", "src/apps/matrix/data")
BYTES = {"FP32": 4.0, "FP16": 2.0, "BF16": 2.0, "FP8": 1.0, "INT8": 1.0, "INT4": 0.5}


def key(name):
    return re.sub(r"[^a-z0-9.]", "", name.lower())


def table(name):
    with open(os.path.join(DATA, name), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def index(rows):
    out = {}
    for r in rows:
        for n in [r["name"]] + [a for a in r.get("aliases", "").split(",") if a]:
            out[key(n)] = r
    return out


def fnum(v, default=0.0):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


HW_ROWS = [r for r in table("hardware.tsv") if r["kind"] == "gpu"]
HW = index(HW_ROWS)
MODELS = index(table("models.tsv"))
PRICE = {}
for inst in table("instances.tsv"):
    per_gpu = fnum(inst["usd_per_hour"]) / max(1, int(inst["gpu_count"]))
    k = key(inst["hardware"])
    PRICE[k] = min(PRICE.get(k, per_gpu), per_gpu)


def precision_of(s):
    s = (s or "FP16").upper()
    for p in BYTES:
        if p in s:
            return p
    return "FP16"


# one row of features: categorical (gpu, precision, metric), then numeric
def features(model, hw, count, precision, batch, inp, out, metric):
    params = fnum(model.get("params_b"), 1.0) if model else 1.0
    return [hw["name"], precision, metric,
            math.log(max(params, 1e-3)), fnum(model.get("layers")) if model else 24,
            fnum(model.get("hidden")) if model else 2048, fnum(hw["fp16_tflops"]),
            fnum(hw["memory_bw_gbs"]), fnum(hw["memory_gb"]), count, BYTES[precision],
            math.log(max(batch, 1)), math.log(max(inp, 1)), math.log(max(out, 1))]


def train():
    X, y = [], []
    for r in table("calibration.tsv"):
        if r["metric"].startswith("training"):
            continue
        hw = HW.get(key(r["gpu"]))
        model = MODELS.get(key(r["model"]))
        if not hw:
            continue
        batch = 512 if r["batch"] == "max-load" else fnum(r["batch"], 1)
        X.append(features(model, hw, fnum(r["count"], 1), precision_of(r["precision"]), batch,
                          fnum(r["input_len"], 128), fnum(r["output_len"], 128), r["metric"]))
        y.append(math.log(fnum(r["value"], 1)))
    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2]),
        ("num", StandardScaler(), list(range(3, 14))),
    ])
    pipe = Pipeline([("pre", pre), ("xgb", XGBRegressor(n_estimators=200, max_depth=4,
                                                        learning_rate=0.1, n_jobs=1))])
    pipe.fit(np.array(X, dtype=object), np.array(y))
    return pipe


PIPE = train()
app = FastAPI()


class Requirements(BaseModel):
    max_latency_ms: float | None = None
    min_throughput_qps: float | None = None
    budget_limit: float | None = None


class Workload(BaseModel):
    model_name: str
    framework: str | None = None
    task_type: str = "Inference"
    parameters_millions: float | None = None
    model_size_mb: float | None = None
    precision: str = "FP16"
    architecture_type: str | None = None
    hardware: str | None = None
    gpu_count: int = 1
    batch_size: int = 1
    input_length: int = 512
    output_length: int = 128
    performance_requirements: Requirements | None = None


def predict(w, configs):
    """Per-configuration figures from one batched prediction."""
    model = MODELS.get(key(w.model_name))
    prec = precision_of(w.precision)
    out_len = max(w.output_length, 1)
    X = np.array([features(model, hw, n, prec, w.batch_size, w.input_length, out_len,
                           "output_throughput_per_gpu") for hw, n in configs], dtype=object)
    tput = np.exp(PIPE.predict(X))  # output tokens/s per GPU
    res = []
    for (hw, n), t in zip(configs, tput):
        tokens_s = float(t) * n
        latency_ms = w.batch_size * out_len / tokens_s * 1000
        qps = tokens_s / out_len
        per_hour = PRICE.get(key(hw["name"]))
        cost = per_hour * n / (qps * 3.6) if per_hour else None  # per 1,000 requests
        res.append({"hardware": hw["name"], "gpu_count": n,
                    "performance_metrics": {"latency_ms": latency_ms, "throughput_qps": qps,
                                            "throughput_tokens_per_s": tokens_s},
                    "cost_analysis": {"cost_per_hour": per_hour * n if per_hour else None,
                                      "cost_per_1000_inferences": cost}})
    return res


def meets(c, req):
    if req is None:
        return True
    pm, ca = c["performance_metrics"], c["cost_analysis"]
    if req.max_latency_ms is not None and pm["latency_ms"] > req.max_latency_ms:
        return False
    if req.min_throughput_qps is not None and pm["throughput_qps"] < req.min_throughput_qps:
        return False
    if req.budget_limit is not None and (ca["cost_per_hour"] is None
                                         or ca["cost_per_hour"] * 730 > req.budget_limit):
        return False
    return True


@app.post("/api/model/simulate-performance")
def simulate(w: Workload):
    hw = HW.get(key((w.hardware or "A100").split("+")[0]))
    configs = predict(w, [(hw, w.gpu_count)])
    return {"status": "success", "data": {"configurations": configs,
                                          "performance_metrics": configs[0]["performance_metrics"],
                                          "cost_analysis": configs[0]["cost_analysis"]},
            "metadata": {"model_version": "xgboost-peer"}}


@app.post("/api/model/recommend-hardware")
def recommend(w: Workload):
    configs = predict(w, [(hw, n) for hw in HW_ROWS for n in (1, 2, 4, 8)])
    ok = [c for c in configs if meets(c, w.performance_requirements)]
    ok.sort(key=lambda c: c["cost_analysis"]["cost_per_1000_inferences"] or float("inf"))
    return {"status": "success",
            "data": {"recommendations": ok, "considered": len(configs),
                     "excluded": [{"hardware": c["hardware"], "gpu_count": c["gpu_count"]}
                                  for c in configs if c not in ok]},
            "metadata": {"model_version": "xgboost-peer"}}


def serve():
    """uvicorn --workers N with the listening socket made as uvicorn's
    upstream fix makes it (the module docstring says why)."""
    import argparse
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    config = uvicorn.Config("peer:app", host=a.host, port=a.port, workers=a.workers,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config=config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    if a.workers > 1:
        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


if __name__ == "__main__":
    serve()
