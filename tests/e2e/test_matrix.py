"""matrix over real sockets: the seed's simulate-performance payload
verbatim, catalogue models and hardware, training, refusals, the catalogue
reads, admins' edits of the catalogue (kept across a restart), and
`grove matrix calibrate`."""

import json
import os
import shutil
import subprocess
import tempfile

from grove import FAST_HASH, GROVE, Grove, Postgres, add_key, eventually, main
from matrix_fixture import SEED_SIMULATE as SEED, start

g = None
READ = ADMIN = None

def setup():
    global g, READ, ADMIN
    g, READ, ADMIN = start(("k-read", "read"), ("k-admin", "read,admin"))


def post(body, key=None):
    return g.request("POST", "/api/model/simulate-performance", body=json.dumps(body).encode(),
                     headers={"X-API-Key": key or READ, "Content-Type": "application/json"},
                     timeout=60)


def get(path, key=None):
    return g.request("GET", path, headers={"X-API-Key": key or READ} if key != "" else {})


def test_seed_payload_covers_every_catalogue_gpu():
    r = post(SEED)
    assert r.status == 200, r.body
    body = r.json()
    assert body["status"] == "success"
    d = body["data"]
    assert d["model"]["model_name"] == "BERT-Large"
    assert d["workload"]["precision"] == "FP32" and d["workload"]["output_length"] == 0
    configs = d["configurations"]
    hardware = {c["hardware"] for c in configs}
    assert {"A100-SXM4-80GB", "H100-SXM5-80GB", "L4", "T4", "MI300X"} <= hardware, hardware
    for c in configs:
        pm = c["performance_metrics"]
        assert pm["latency_ms"] > 0 and pm["throughput_qps"] > 0
        lo, hi = c["uncertainty"]["latency_ms"]
        assert lo < pm["latency_ms"] < hi
        assert c["memory"]["fits"] is True  # 340M parameters fit anywhere
    # the A10G publishes no peak: excluded with the reason
    assert any(e["hardware"] == "A10G" and "peak" in e["reason"] for e in d["excluded"]), d["excluded"]
    # recommendations meet all three requirements, cheapest first
    recs = d["recommendations"]
    assert recs, "a 340M encoder meets 100 ms / 10 qps / $1000 a month somewhere"
    costs = [x["cost_per_1000_inferences"] for x in recs]
    assert costs == sorted(costs)
    assert d["performance_metrics"] and d["cost_analysis"]
    assert "hardware: every catalogue GPU" in d["assumptions"]
    meta = body["metadata"]
    assert 0 < meta["confidence_score"] < 1 and meta["model_version"]
    assert "processing_time_ms" in meta


def test_named_hardware_picks_the_smallest_count_that_fits():
    r = post({"model_name": "Llama-2-70B", "hardware": "H100 SXM", "precision": "FP16",
              "input_length": 1024, "output_length": 256, "batch_size": 8})
    assert r.status == 200, r.body
    configs = r.json()["data"]["configurations"]
    # 138 GB of FP16 weights: one 80 GB GPU does not hold them, two do
    assert [c["gpu_count"] for c in configs] == [1, 2], configs
    assert [c["memory"]["fits"] for c in configs] == [False, True]
    assert configs[0]["unmet"] == ["does not fit in memory"]
    c = configs[-1]
    assert c["tensor_parallel"] == 2 and c["memory"]["weights_gb"] == 68.98
    pm = c["performance_metrics"]
    assert pm["time_to_first_token_ms"] < pm["latency_ms"]
    assert pm["interconnect_ms"] > 0
    cost = c["cost_analysis"]
    assert cost["instance"] == "p5.48xlarge" and cost["provider"] == "aws"
    assert cost["cost_per_1000_inferences"] > 0 and cost["carbon_g_per_1000_inferences"] > 0


def test_seed_hardware_id_and_longer_outputs():
    base = {"model_name": "Llama-3.1-8B", "hardware": "L4 + Intel(R) Xeon", "gpu_count": 1,
            "precision": "FP8", "batch_size": 4, "input_length": 256}
    lat = []
    for out in (16, 128, 512):
        r = post(dict(base, output_length=out))
        assert r.status == 200, r.body
        c = r.json()["data"]["configurations"]
        assert len(c) == 1 and c[0]["hardware"] == "L4"
        lat.append(c[0]["performance_metrics"]["latency_ms"])
    assert lat == sorted(lat), lat


def test_training_run():
    r = post({"model_name": "Llama-2-7B", "task_type": "Training", "hardware": "A100-80GB",
              "gpu_count": 64, "training_tokens": 2e12, "sequence_length": 4096,
              "global_batch_size": 1024, "zero_stage": 1, "recompute": "full"})
    assert r.status == 200, r.body
    d = r.json()["data"]
    c = d["configurations"][0]
    pm = c["performance_metrics"]
    # 6·N·D over 64 A100s at well under their peak: thousands of hours
    ideal = 6 * 6.74e9 * 2e12 / (64 * 312e12) / 3600
    assert ideal < pm["training_time_hours"] < 3 * ideal, pm
    assert 0.2 < pm["mfu"] < 0.8
    mem = c["memory"]
    assert mem["zero_stage"] == 1 and mem["fits"] is True
    assert c["cost_analysis"]["cost_per_run"] > 0 and c["cost_analysis"]["energy_kwh"] > 0
    assert c["data_parallel"] == 64


def test_custom_model_by_shapes_and_incomplete_specs():
    r = post({"model_name": "my-encoder", "parameters_millions": 110, "num_layers": 12,
              "hidden_size": 768, "num_attention_heads": 12, "vocab_size": 30522,
              "architecture_type": "encoder", "hardware": "T4", "gpu_count": 1,
              "input_length": 128})
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert d["model"]["model_name"] == "my-encoder"
    assert any("head_dim" in a for a in d["assumptions"])
    r = post({"model_name": "GPT-3.5-Turbo", "parameters_millions": 20000})
    assert r.status == 422, r.body
    e = r.json()
    assert e["status"] == "error" and e["error_code"] == "INVALID_MODEL_SPECS"
    assert "num_layers" in e["details"]["missing_fields"]
    assert e["details"]["suggested_values"]["model_name"]


def test_bad_requests_are_refused():
    cases = [
        ({"model_name": "Llama-2-7B", "hardware": "TPU v9"}, 400, "UNKNOWN_HARDWARE"),
        ({"model_name": "Llama-2-7B", "batch_size": -1}, 400, "VALIDATION_ERROR"),
        ({"model_name": "Llama-2-7B", "batch_size": "many"}, 400, "VALIDATION_ERROR"),
        ({"model_name": "Llama-2-7B", "precision": "FP7"}, 400, "INVALID_PRECISION"),
        ({"model_name": "Llama-2-7B", "task_type": "Dreaming"}, 400, "VALIDATION_ERROR"),
        ({"model_name": "Llama-2-7B", "region": "mars-1"}, 400, "UNKNOWN_REGION"),
        ({"model_name": "Llama-2-7B", "hardware": "A100", "gpu_count": 1, "precision": "FP8"},
         422, "UNSUPPORTED_HARDWARE"),
        ({"model_name": "Llama-2-7B", "hardware": "A100", "gpu_count": 3}, 400, "INVALID_WORKLOAD"),
        ({"model_name": "Llama-2-7B", "input_length": 5000}, 422, "NO_CONFIGURATION"),
        ({"model_name": "Llama-2-7B", "performance_requirements": 5}, 400, "VALIDATION_ERROR"),
        # the model's own fields are checked for a catalogue model too (it
        # does not use them), never passed over
        (dict(SEED, parameters_millions="abc"), 400, "VALIDATION_ERROR"),
        (dict(SEED, parameters_millions=-1), 400, "VALIDATION_ERROR"),
        (dict(SEED, model_size_mb=[]), 400, "VALIDATION_ERROR"),
        (dict(SEED, num_layers=0), 400, "VALIDATION_ERROR"),
        (dict(SEED, hidden_size=1e308), 400, "VALIDATION_ERROR"),
        (dict(SEED, framework={}), 400, "VALIDATION_ERROR"),
        (dict(SEED, architecture_type=1), 400, "VALIDATION_ERROR"),
        ({"model_name": "custom-x", "parameters_millions": 100, "num_layers": 4,
          "hidden_size": 512, "num_attention_heads": 8, "num_key_value_heads": 3},
         400, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        r = post(body)
        assert r.status == status, (body, r.status, r.body)
        assert r.json()["error_code"] == code, (body, r.body)
    r = g.request("POST", "/api/model/simulate-performance", body=b"{not json",
                  headers={"X-API-Key": READ, "Content-Type": "application/json"})
    assert r.status == 400, r.body
    r = g.request("POST", "/api/model/simulate-performance", body=json.dumps(SEED).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 401, r.body


def test_catalogue_reads():
    r = get("/api/hardware-specs")
    assert r.status == 200, r.body
    hw = r.json()["data"]
    assert len(hw) == r.json()["metadata"]["count"] >= 14
    h100 = [h for h in hw if h["hardware_name"] == "H100-SXM5-80GB"][0]
    assert h100["performance_metrics"]["fp16_tflops"] == 989.5
    assert h100["specifications"]["idle_w"] is None and h100["source"]
    assert any(i["instance"] == "p5.48xlarge" for i in h100["cost_data"]["instances"])
    r = get("/api/hardware-specs/mi300x")
    assert r.status == 200 and r.json()["data"]["specifications"]["memory_gb"] == 192
    assert get("/api/hardware-specs/nope").status == 404
    r = get("/api/model/get-model-data")
    assert r.status == 200, r.body
    models = {m["model_name"]: m for m in r.json()["data"]}
    assert models["Mixtral-8x7B"]["architecture_type"] == "moe"
    assert models["Llama-2-70B"]["architecture"]["num_key_value_heads"] == 8
    r = get("/api/model/get-model-data?model_name=Llama-3.3-70B-Instruct")
    assert r.status == 200 and r.json()["data"]["model_name"] == "Llama-3.1-70B"
    r = get("/api/cost-models?provider=aws&hardware=L4")
    assert r.status == 200, r.body
    rows = r.json()["data"]
    assert [x["instance"] for x in rows] == ["g6.xlarge"]
    assert rows[0]["region_data"]["pue"] == 1.15
    r = get("/api/cost-models/regions")
    assert r.status == 200 and all(x["carbon_source"] for x in r.json()["data"])
    assert get("/api/hardware-specs", key="").status == 401


def edit(method, path, body=None, key=None, grove=None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"X-API-Key": key or ADMIN}
    if data is not None:
        h["Content-Type"] = "application/json"
    return (grove or g).request(method, "/api/v1/matrix/catalogue/" + path, body=data, headers=h)


# a made-up GPU for the test (not a catalogue figure)
TEST_GPU = {"kind": "gpu", "vendor": "Test", "family": "test", "memory_gb": 48,
            "memory_bw_gbs": 1000, "fp16_tflops": 100, "bf16_tflops": 100, "link": "pcie",
            "link_gbs": 64, "pcie_gbs": 64, "tdp_w": 300, "year": 2025, "source": "e2e test"}


def test_admins_edit_the_catalogue():
    r = edit("PUT", "hardware/Test-GPU-48", TEST_GPU)
    assert r.status == 200, r.body
    assert r.json()["data"]["hardware_name"] == "Test-GPU-48"
    r = get("/api/hardware-specs/test_gpu_48")
    assert r.status == 200 and r.json()["data"]["specifications"]["memory_bandwidth_gbs"] == 1000
    sim = {"model_name": "Llama-2-7B", "hardware": "Test-GPU-48", "gpu_count": 1,
           "output_length": 512}
    r = post(sim)
    assert r.status == 200, r.body
    c = r.json()["data"]["configurations"][0]
    assert c["cost_analysis"]["basis"].startswith("electricity")  # no instance of it
    before = c["performance_metrics"]["time_per_output_token_ms"]
    # replaced: the next simulation decodes on the new bandwidth
    r = edit("PUT", "hardware/Test-GPU-48", dict(TEST_GPU, memory_bw_gbs=2000))
    assert r.status == 200, r.body
    r = post(sim)
    assert r.status == 200, r.body
    after = r.json()["data"]["configurations"][0]["performance_metrics"]["time_per_output_token_ms"]
    assert after < before * 0.75, (before, after)
    # refusals: unknown column, a kind that is not gpu/cpu, the read scope
    r = edit("PUT", "hardware/Test-GPU-48", dict(TEST_GPU, flops=1))
    assert r.status == 400 and r.json()["error_code"] == "INVALID_CATALOGUE_ROW", r.body
    r = edit("PUT", "hardware/Test-GPU-48", dict(TEST_GPU, kind="tpu"))
    assert r.status == 400 and "kind" in r.json()["message"], r.body
    r = edit("PUT", "hardware/Test-GPU-48", dict(TEST_GPU, source="a\tb"))
    assert r.status == 400, r.body
    # numbers are plain decimals up to 1e8: nothing computed from a row
    # overflows into a null or infinite figure
    for bad in (1e308, "0x50", " 80", "inf", -1):
        r = edit("PUT", "hardware/Test-GPU-48", dict(TEST_GPU, memory_gb=bad))
        assert r.status == 400 and r.json()["error_code"] == "INVALID_CATALOGUE_ROW", (bad, r.body)
    r = edit("PUT", "regions/aws/test-1", {"location": "Test", "pue": 0.5})
    assert r.status == 400 and "PUE" in r.json()["message"], r.body
    assert edit("PUT", "hardware/Test-GPU-48", TEST_GPU, key=READ).status == 403
    # a name that is too long is told so, not that it lacks letters
    r = edit("PUT", "hardware/" + "x" * 500, TEST_GPU)
    assert r.status == 400 and r.json()["error_code"] == "INVALID_KEY", r.body
    assert "at most 199" in r.json()["message"], r.body
    # an instance needs catalogue hardware; hardware an instance names stays
    inst = {"hardware": "Test-GPU-48", "gpu_count": 4, "usd_per_hour": 9.5, "year": 2025,
            "source": "e2e test"}
    r = edit("PUT", "instances/aws/us-east-1/test.4xlarge", inst)
    assert r.status == 200 and r.json()["data"]["cost_per_gpu_hour"] == 2.375, r.body
    r = edit("PUT", "instances/aws/us-east-1/bad.xlarge", dict(inst, hardware="TPU-v9"))
    assert r.status == 400, r.body
    r = edit("DELETE", "hardware/Test-GPU-48")
    assert r.status == 400 and "unknown hardware" in r.json()["message"], r.body
    assert edit("DELETE", "instances/aws/us-east-1/test.4xlarge").status == 200
    assert edit("DELETE", "hardware/Test-GPU-48").status == 200
    assert get("/api/hardware-specs/Test-GPU-48").status == 404
    assert edit("DELETE", "hardware/Test-GPU-48").status == 404
    # models too
    model = {"family": "test", "architecture": "decoder", "params_b": 1.1, "layers": 22,
             "hidden": 2048, "heads": 32, "kv_heads": 4, "head_dim": 64, "intermediate": 5632,
             "vocab": 32000, "max_context": 2048, "year": 2025, "source": "e2e test"}
    r = edit("PUT", "models/Test-1B", model)
    assert r.status == 200 and r.json()["data"]["architecture"]["num_layers"] == 22, r.body
    r = edit("PUT", "models/Test-1B", dict(model, kv_heads=64))
    assert r.status == 400 and "inconsistent" in r.json()["message"], r.body
    r = edit("PUT", "models/Test-1B", dict(model, kv_heads=5))  # 32 heads in 5 groups
    assert r.status == 400 and "inconsistent" in r.json()["message"], r.body
    r = edit("PUT", "models/Test-1B", dict(model, params_b=1e308))
    assert r.status == 400 and r.json()["error_code"] == "INVALID_CATALOGUE_ROW", r.body
    # a context too short to hold one token in and one out is the row's fault,
    # refused at the edit rather than blamed on a later simulation
    for ctx in (0, 1):
        r = edit("PUT", "models/Test-1B", dict(model, max_context=ctx))
        assert r.status == 400 and "max_context" in r.json()["message"], r.body


def test_edits_survive_a_restart():
    tmp = tempfile.mkdtemp(prefix="grove-matrix-")
    data_dir = os.path.join(tmp, "data")
    try:
        g2 = Grove(*FAST_HASH, data_dir=data_dir)
        try:
            k = add_key(g2, "k-admin", "read,admin")
            region = {"location": "test", "electricity_usd_per_kwh": 0.2,
                      "electricity_year": 2025, "electricity_source": "e2e test",
                      "carbon_g_per_kwh": 10, "carbon_year": 2025, "carbon_source": "e2e test",
                      "pue": 1.2, "pue_year": 2025, "pue_source": "e2e test"}
            r = edit("PUT", "regions/onprem/test-1", region, key=k, grove=g2)
            assert r.status == 200, r.body
            assert edit("DELETE", "regions/aws/eu-west-3", key=k, grove=g2).status == 200
        finally:
            g2.stop()
        g3 = Grove(*FAST_HASH, data_dir=data_dir)
        try:
            eventually(lambda: g3.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                       what="key loaded")
            r = g3.request("GET", "/api/cost-models/regions", headers={"X-API-Key": k})
            assert r.status == 200, r.body
            regions = {(x["provider"], x["region"]) for x in r.json()["data"]}
            assert ("onprem", "test-1") in regions and ("aws", "eu-west-3") not in regions
        finally:
            g3.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_edits_on_postgres():
    """The same edits, kept in PostgreSQL: the upsert replaces, a second
    instance sees them when it starts."""
    pg = Postgres()
    a = b = None
    try:
        a = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        k = add_key(a, "k-admin", "read,admin", store=pg.url)
        inst = {"hardware": "L4", "gpu_count": 1, "usd_per_hour": 0.5, "year": 2025,
                "source": "e2e test"}
        for price in (0.5, 0.75):
            r = edit("PUT", "instances/gcp/us-central1/test-l4", dict(inst, usd_per_hour=price),
                     key=k, grove=a)
            assert r.status == 200, r.body
        b = Grove("--store", pg.url, *FAST_HASH)
        eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                   what="key loaded")
        r = b.request("GET", "/api/cost-models?instance=x&hardware=L4&provider=gcp",
                      headers={"X-API-Key": k})
        assert r.status == 200, r.body
        prices = {x["instance"]: x["cost_per_hour"] for x in r.json()["data"]}
        assert prices.get("test-l4") == 0.75, prices
    finally:
        for x in (a, b):
            if x is not None:
                x.stop()
        pg.stop()


def test_calibrate_verb_is_reproducible():
    outs = [subprocess.run([GROVE, "matrix", "calibrate"], capture_output=True, text=True)
            for _ in range(2)]
    for o in outs:
        assert o.returncode == 0, o.stderr
        assert "leave-one-out" in o.stdout and "prefill_eff" in o.stdout
    assert outs[0].stdout == outs[1].stdout
    o = subprocess.run([GROVE, "matrix", "calibrate", "--data", "/nonexistent"],
                       capture_output=True, text=True)
    assert o.returncode == 1 and "no catalogue" in o.stderr
    o = subprocess.run([GROVE, "--help"], capture_output=True, text=True)
    assert "grove matrix calibrate" in o.stdout + o.stderr


if __name__ == "__main__":
    main(globals())
