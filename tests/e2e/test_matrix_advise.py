"""matrix's recommendations over real sockets: recommend-hardware (every
catalogue configuration ranked against the seed's performance_requirements),
post-deployment-optimization (the seed's label sets, every label reached)
and optimization-recommendation (method and precision); the seed's example
payloads verbatim, properties of the ranking, and the seed's error
envelope for bad input."""

import json

from grove import main
from matrix_fixture import SEED_SIMULATE, start

g = None
READ = None

SEED_POST_DEPLOYMENT = {
    "model_name": "GPT-3.5-Turbo",
    "current_hardware_id": "L4 + Intel(R) Xeon",
    "deployment_type": "bare-metal",
    "gpu_utilization": 75,
    "gpu_memory_usage": 80,
    "cpu_utilization": 65,
    "cpu_memory_usage": 70,
    "current_performance": {
        "latency_ms": 150,
        "cost_per_1000": 0.05,
    },
}

REASONS = {"DOES_NOT_FIT", "TOO_SLOW", "TOO_LITTLE_THROUGHPUT", "OVER_BUDGET", "COST_UNKNOWN",
           "NOT_SIMULABLE"}


def setup():
    global g, READ
    g, READ = start(("k-read", "read"))


def post(path, body, raw=None):
    return g.request("POST", path, body=raw if raw is not None else json.dumps(body).encode(),
                     headers={"X-API-Key": READ, "Content-Type": "application/json"}, timeout=60)


def recommend(body):
    return post("/api/model/recommend-hardware", body)


def options(d):
    return {(x["hardware"], x["gpu_count"]) for x in d["recommendations"]}


def error_envelope(r, status, code):
    assert r.status == status, (r.status, r.body)
    b = r.json()
    assert b["status"] == "error" and b["error_code"] == code, b
    assert isinstance(b["message"], str) and b["message"]
    assert isinstance(b["details"], dict)
    return b


# ---- recommend-hardware --------------------------------------------------

def test_recommend_seed_payload_ranks_every_configuration():
    r = recommend(SEED_SIMULATE)
    assert r.status == 200, r.body
    body = r.json()
    assert body["status"] == "success"
    d = body["data"]
    assert d["model"]["model_name"] == "BERT-Large" and d["rank_by"] == "cost"
    assert d["performance_requirements"] == {"max_latency_ms": 100, "min_throughput_qps": 10,
                                             "budget_limit": 1000, "budget_period": "month"}
    recs, excl = d["recommendations"], d["excluded"]
    assert recs, "a 340M encoder meets 100 ms / 10 qps / $1000 a month somewhere"
    # every catalogue GPU at 1, 2, 4 and 8: ranked or excluded, nothing lost
    assert d["considered"] == len(recs) + len(excl) and d["recommended"] == len(recs)
    seen = options(d) | {(x["hardware"], x["gpu_count"]) for x in excl}
    for gpu in ("A100-SXM4-80GB", "H100-SXM5-80GB", "L4", "T4", "MI300X", "A10G"):
        assert {(gpu, n) for n in (1, 2, 4, 8)} <= seen, gpu
    assert [x["rank"] for x in recs] == list(range(1, len(recs) + 1))
    for x in recs:
        pm, cost = x["performance_metrics"], x["cost_analysis"]
        assert pm["latency_ms"] <= 100 and pm["throughput_qps"] >= 10
        assert cost["cost_per_hour"] * 730 <= 1000
        assert x["memory"]["fits"] is True
        m = x["monthly"]
        assert m["hours"] == 730 and m["cost_usd"] <= 1000 and m["carbon_kg"] > 0
        assert cost["carbon_g_per_1000_inferences"] > 0 and cost["energy_kwh_per_1000_inferences"] > 0
    # cheapest first among those priced by an instance, then the electricity-only ones
    tiers = [0 if x["cost_analysis"]["instance"] else 1 for x in recs]
    assert tiers == sorted(tiers), tiers
    for t in (0, 1):
        costs = [x["cost_analysis"]["cost_per_1000_inferences"] for x, k in zip(recs, tiers) if k == t]
        assert costs == sorted(costs)
    # each exclusion says why, with a code
    for x in excl:
        assert x["reasons"] and all(y["code"] in REASONS and y["message"] for y in x["reasons"]), x
    assert any(x["hardware"] == "A10G" and x["reasons"][0]["code"] == "NOT_SIMULABLE" for x in excl)
    assert any(y["code"] == "OVER_BUDGET" for x in excl for y in x["reasons"])
    # the seed's envelope: the first recommendation's figures at the top
    assert d["performance_metrics"] == recs[0]["performance_metrics"]
    assert d["cost_analysis"] == recs[0]["cost_analysis"]
    meta = body["metadata"]
    assert 0 < meta["confidence_score"] < 1 and "processing_time_ms" in meta


def test_recommend_nothing_meets_an_impossible_requirement():
    r = recommend(dict(SEED_SIMULATE, performance_requirements={"max_latency_ms": 0.001}))
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert d["recommendations"] == [] and d["recommended"] == 0
    assert d["performance_metrics"] is None and d["cost_analysis"] is None
    assert d["excluded"] and len(d["excluded"]) == d["considered"]
    for x in d["excluded"]:
        codes = {y["code"] for y in x["reasons"]}
        assert codes & {"TOO_SLOW", "NOT_SIMULABLE"}, x


def test_recommend_tighter_latency_never_adds_options():
    prev = None
    for lat in (10000, 200, 50, 20, 10, 5, 1):
        body = dict(SEED_SIMULATE, performance_requirements={"max_latency_ms": lat})
        r = recommend(body)
        assert r.status == 200, r.body
        now = options(r.json()["data"])
        if prev is not None:
            assert now <= prev, (lat, now - prev)
        prev = now
    # and a larger budget never removes any
    prev = None
    for budget in (100, 1000, 10000, 1e6):
        r = recommend(dict(SEED_SIMULATE, performance_requirements={"budget_limit": budget}))
        now = options(r.json()["data"])
        if prev is not None:
            assert prev <= now, budget
        prev = now


def test_recommend_rank_by_each_figure():
    keys = {
        "latency": lambda x: x["performance_metrics"]["latency_ms"],
        "throughput": lambda x: -x["performance_metrics"]["throughput_qps"],
        "energy": lambda x: x["cost_analysis"]["energy_kwh_per_1000_inferences"],
        "carbon": lambda x: x["cost_analysis"]["carbon_g_per_1000_inferences"],
    }
    for by, key in keys.items():
        r = recommend({"model_name": "Llama-3.1-8B", "rank_by": by,
                       "performance_requirements": {"max_latency_ms": 5000}})
        assert r.status == 200, r.body
        d = r.json()["data"]
        assert d["rank_by"] == by and d["recommendations"]
        vals = [key(x) for x in d["recommendations"]]
        assert vals == sorted(vals), (by, vals)


def test_recommend_region_sets_cost_and_carbon():
    r = recommend({"model_name": "Llama-3.1-8B", "provider": "aws", "region": "eu-west-3"})
    assert r.status == 200, r.body
    recs = r.json()["data"]["recommendations"]
    assert recs
    for x in recs:
        c = x["cost_analysis"]
        assert c["provider"] == "aws" and c["region"] == "eu-west-3"
        # carbon = facility energy (IT × PUE) × the region's intensity, each
        # figure given to 6 significant digits (half a unit in the 6th: 5e-6)
        assert abs(c["carbon_g_per_1000_inferences"]
                   - c["energy_kwh_per_1000_inferences"] * c["carbon_g_per_kwh"]) \
            <= 1.5e-5 * c["carbon_g_per_1000_inferences"]
        assert c["pue"] == 1.15


def test_recommend_training_over_data_parallel_counts():
    r = recommend({"model_name": "Llama-2-7B", "task_type": "Training", "training_tokens": 1e11,
                   "performance_requirements": {"budget_limit": 500000}})
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert d["performance_requirements"]["budget_period"] == "run"
    counts = {x["gpu_count"] for x in d["recommendations"]} | {x["gpu_count"] for x in d["excluded"]}
    assert counts == {8, 16, 32, 64, 128, 256, 512}, counts
    for x in d["recommendations"]:
        assert x["cost_analysis"]["cost_per_run"] <= 500000 and "monthly" not in x
    costs = [x["cost_analysis"]["cost_per_run"] for x in d["recommendations"]
             if x["cost_analysis"]["instance"]]
    assert costs == sorted(costs)


def test_recommend_bad_input_gets_the_error_envelope():
    b = error_envelope(recommend({}), 422, "INVALID_MODEL_SPECS")
    assert "parameters_millions" in b["details"]["missing_fields"]
    b = error_envelope(recommend({"model_name": "no-such-model", "parameters_millions": 100}),
                       422, "INVALID_MODEL_SPECS")
    assert b["details"]["missing_fields"] == ["num_layers", "hidden_size", "num_attention_heads"]
    error_envelope(recommend(dict(SEED_SIMULATE, hardware="L4")), 400, "VALIDATION_ERROR")
    error_envelope(recommend(dict(SEED_SIMULATE, rank_by="vibes")), 400, "VALIDATION_ERROR")
    error_envelope(recommend(dict(SEED_SIMULATE, precision="FP7")), 400, "INVALID_PRECISION")
    error_envelope(recommend(dict(SEED_SIMULATE, performance_requirements={"max_latency_ms": "x"})),
                   400, "VALIDATION_ERROR")
    error_envelope(post("/api/model/recommend-hardware", None, raw=b"{not json"), 400,
                   "INVALID_JSON")


# ---- post-deployment-optimization ----------------------------------------

def deploy(body):
    return post("/api/deployment/post-deployment-optimization", body)


def gpus():
    r = g.request("GET", "/api/hardware-specs", headers={"X-API-Key": READ})
    return {h["hardware_name"] for h in r.json()["data"] if h["kind"] == "gpu"}


def test_post_deployment_seed_payload_maintains_the_l4():
    r = deploy(SEED_POST_DEPLOYMENT)
    assert r.status == 200, r.body
    d = r.json()["data"]
    # 80 % of the L4's memory is at the 80 % target, 75 % busy under it; the one
    # cheaper GPU (T4) has 16 GB, too little for the 19.2 GB in use
    assert d["recommendation"] == "MAINTAIN" and d["action"] == "maintain", d
    assert d["deployment_type"] == "bare-metal" and d["current"]["hardware"] == "L4"
    assert d["basis"] == "memory bandwidth"  # GPT-3.5-Turbo is not in the catalogue
    assert d["expected"]["latency_ms"] == 150 and d["expected"]["monthly_saving_usd"] == 0
    t4 = [a for a in d["alternatives"] if a["hardware"] == "T4"][0]
    assert t4["projected_gpu_memory_usage"] == 80 * 24 / 16 and t4["within_target"] is False
    assert d["reasons"] and d["thresholds"] == {"target_utilization_percent": 80, "tolerance": 0.1}


def test_post_deployment_saturated_gpu_upgrades():
    r = deploy(dict(SEED_POST_DEPLOYMENT, gpu_utilization=98, gpu_memory_usage=95))
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert d["recommendation"].startswith("Upgrade to "), d
    to = d["recommendation"][len("Upgrade to "):]
    assert to in gpus() and to == d["target"]["hardware"] and to != "L4"
    assert d["expected"]["gpu_utilization"] <= 80 and d["expected"]["gpu_memory_usage"] <= 80
    assert d["expected"]["latency_ms"] < 150 and d["target"]["speed_ratio"] > 1


def test_post_deployment_idle_h100_downgrades_by_simulation():
    r = deploy({"model_name": "Llama-3.1-8B", "current_hardware_id": "H100 SXM",
                "deployment_type": "bare-metal", "gpu_utilization": 10, "gpu_memory_usage": 15,
                "current_performance": {"latency_ms": 900, "cost_per_1000": 0.4}})
    assert r.status == 200, r.body
    d = r.json()["data"]
    assert d["basis"] == "simulated"
    assert d["recommendation"].startswith("Downgrade to "), d
    to = d["recommendation"][len("Downgrade to "):]
    assert to in gpus() and d["target"]["speed_ratio"] < 1
    e = d["expected"]
    assert e["monthly_saving_usd"] > 0 and e["cost_per_1000"] < 0.4 and e["latency_ms"] > 900
    assert e["gpu_utilization"] <= 80 and e["gpu_memory_usage"] <= 80


def test_post_deployment_keeps_to_a_latency_ceiling():
    body = {"model_name": "Llama-3.1-8B", "current_hardware_id": "H100 SXM",
            "deployment_type": "bare-metal", "gpu_utilization": 10, "gpu_memory_usage": 15,
            "current_performance": {"latency_ms": 900, "cost_per_1000": 0.4}}
    free = deploy(body).json()["data"]
    capped = deploy(dict(body, performance_requirements={"max_latency_ms": 1500})).json()["data"]
    assert capped["recommendation"].startswith("Downgrade to "), capped
    assert capped["expected"]["latency_ms"] <= 1500 < free["expected"]["latency_ms"]
    assert capped["target"]["hardware"] != free["target"]["hardware"]
    assert any(not a["within_latency"] for a in capped["alternatives"])
    # a ceiling below today's latency leaves only faster GPUs, none cheaper: MAINTAIN
    d = deploy(dict(body, performance_requirements={"max_latency_ms": 100})).json()["data"]
    assert d["recommendation"] == "MAINTAIN", d


def test_post_deployment_cpu_bound_host_maintains():
    r = deploy(dict(SEED_POST_DEPLOYMENT, gpu_utilization=30, cpu_utilization=99))
    d = r.json()["data"]
    assert d["recommendation"] == "MAINTAIN"
    assert any("CPU" in x for x in d["reasons"]), d["reasons"]


def test_post_deployment_vm_labels():
    vm = {"model_name": "GPT-3.5-Turbo", "deployment_type": "vm", "current_hardware_id": "L4",
          "cpu_utilization": 95, "cpu_memory_usage": 50, "gpu_utilization": 60,
          "gpu_memory_usage": 55, "instance_count": 2,
          "current_performance": {"latency_ms": 150, "cost_per_1000": 0.05}}
    d = deploy(vm).json()["data"]
    # 95 / 80 = 1.19: ceil(2 × 1.19) = 3
    assert d["recommendation"] == "SCALE_OUT" and d["recommended_instances"] == 3, d
    assert d["driver"] == "cpu_utilization" and d["expected"]["monthly_cost_change_usd"] > 0
    d = deploy(dict(vm, cpu_utilization=20, cpu_memory_usage=20, gpu_utilization=15,
                    gpu_memory_usage=20, instance_count=4)).json()["data"]
    assert d["recommendation"] == "SCALE_IN" and d["recommended_instances"] == 1, d
    assert d["expected"]["monthly_cost_change_usd"] < 0
    d = deploy(dict(vm, cpu_utilization=78)).json()["data"]
    assert d["recommendation"] == "MAINTAIN" and d["recommended_instances"] == 2, d
    # the seed's payload as a VM: one VM, within tolerance
    d = deploy(dict(SEED_POST_DEPLOYMENT, deployment_type="vm")).json()["data"]
    assert d["recommendation"] == "MAINTAIN" and d["current_instances"] == 1


def test_post_deployment_bad_input_gets_the_error_envelope():
    b = error_envelope(deploy({}), 400, "MISSING_FIELDS")
    assert b["details"]["missing_fields"] == ["deployment_type"]
    body = dict(SEED_POST_DEPLOYMENT)
    del body["current_hardware_id"]
    b = error_envelope(deploy(body), 400, "MISSING_FIELDS")
    assert b["details"]["missing_fields"] == ["current_hardware_id"]
    b = error_envelope(deploy({"deployment_type": "vm"}), 400, "MISSING_FIELDS")
    assert "cpu_utilization" in b["details"]["missing_fields"]
    error_envelope(deploy(dict(SEED_POST_DEPLOYMENT, deployment_type="k8s")), 400,
                   "VALIDATION_ERROR")
    b = error_envelope(deploy(dict(SEED_POST_DEPLOYMENT, gpu_utilization=150)), 400,
                       "VALIDATION_ERROR")
    assert b["details"]["field"] == "gpu_utilization"
    b = error_envelope(deploy(dict(SEED_POST_DEPLOYMENT, current_hardware_id="TPU v5")), 400,
                       "UNKNOWN_HARDWARE")
    assert "L4" in b["details"]["known"]
    error_envelope(deploy(dict(SEED_POST_DEPLOYMENT, current_performance=[1])), 400,
                   "VALIDATION_ERROR")


# ---- optimization-recommendation -----------------------------------------

def optimize(body):
    return post("/api/model/optimization-recommendation", body)


def test_optimization_quantizes_a_decoder_within_the_tolerance():
    base = {"model_name": "Llama-3.1-8B", "hardware": "L4", "precision": "FP16"}
    d = optimize(base).json()["data"]
    assert d["method"] == "quantization" and d["precision"] == "INT8", d["recommendation"]
    assert d["accuracy_tolerance"] == "moderate"
    rec = d["recommendation"]
    assert rec["change"] is True and "Dettmers" in rec["accuracy_risk"]["evidence"]
    e = rec["predicted_effect"]
    assert e["memory_ratio"] < 0.7 and e["latency_ratio"] < 1 and e["cost_ratio"] < 1
    names = [x["precision"] for x in d["precisions"]]
    assert names == ["FP32", "FP16", "INT8", "INT4"]
    fp16 = d["precisions"][1]["effect"]
    assert fp16["memory_ratio"] == 1 and fp16["latency_ratio"] == 1
    for x in d["precisions"]:
        assert x["accuracy_risk"]["level"] and x["accuracy_risk"]["evidence"]
    d = optimize(dict(base, accuracy_tolerance="relaxed")).json()["data"]
    assert d["precision"] == "INT4" and "GPTQ" in d["recommendation"]["accuracy_risk"]["evidence"]
    d = optimize(dict(base, precision="FP32", accuracy_tolerance="strict")).json()["data"]
    assert d["precision"] == "FP16" and d["method"] == "quantization"
    # already at the best precision allowed, memory-bound decode: nothing to change
    d = optimize(dict(base, accuracy_tolerance="strict")).json()["data"]
    assert d["precision"] == "FP16" and d["method"] == "quantization"
    assert d["recommendation"]["change"] is False


def test_optimization_prunes_a_compute_bound_encoder():
    d = optimize({"model_name": "BERT-Large", "hardware": "A100-80GB", "precision": "FP16",
                  "accuracy_tolerance": "strict", "batch_size": 32}).json()["data"]
    assert d["workload"] == {"compute_bound": True, "sparse_tensor_cores": True}
    assert d["method"] == "pruning" and d["precision"] == "FP16", d["recommendation"]
    e = d["recommendation"]["predicted_effect"]
    assert e["latency_ratio"] < 1 and e["memory_ratio"] < 1
    assert "SparseGPT" in d["recommendation"]["accuracy_risk"]["evidence"]


def test_optimization_distils_when_nothing_meets():
    d = optimize({"model_name": "Llama-3.1-70B", "hardware": "L4", "gpu_count": 8,
                  "accuracy_tolerance": "none", "precision": "FP32",
                  "performance_requirements": {"max_latency_ms": 50}}).json()["data"]
    assert d["method"] == "distillation" and d["precision"] == "FP32", d["recommendation"]
    assert "Llama-3.1-8B" in d["smaller_models_in_family"]
    assert "DistilBERT" in d["recommendation"]["accuracy_risk"]["evidence"]
    assert d["recommendation"]["predicted_effect"]["latency_ratio"] < 1


def test_optimization_every_label_is_reachable():
    seen_m, seen_p = set(), set()
    cases = [
        {"model_name": "Llama-3.1-8B", "hardware": "L4"},
        {"model_name": "Llama-3.1-8B", "hardware": "L4", "accuracy_tolerance": "relaxed"},
        {"model_name": "Llama-3.1-8B", "hardware": "L4", "precision": "FP32",
         "accuracy_tolerance": "strict"},
        {"model_name": "Llama-3.1-8B", "hardware": "L4", "accuracy_tolerance": "none"},
        {"model_name": "BERT-Large", "hardware": "A100-80GB", "accuracy_tolerance": "strict",
         "batch_size": 32},
        {"model_name": "Llama-3.1-70B", "hardware": "L4", "gpu_count": 8,
         "performance_requirements": {"max_latency_ms": 50}},
    ]
    for c in cases:
        r = optimize(c)
        assert r.status == 200, r.body
        d = r.json()["data"]
        seen_m.add(d["method"])
        seen_p.add(d["precision"])
    assert seen_m == {"quantization", "pruning", "distillation"}, seen_m
    assert seen_p == {"FP32", "FP16", "INT8", "INT4"}, seen_p


def test_optimization_bad_input_gets_the_error_envelope():
    b = error_envelope(optimize({}), 422, "INVALID_MODEL_SPECS")
    assert "parameters_millions" in b["details"]["missing_fields"]
    error_envelope(optimize({"model_name": "Llama-3.1-8B", "precision": "FP7"}), 400,
                   "INVALID_PRECISION")
    error_envelope(optimize({"model_name": "Llama-3.1-8B", "accuracy_tolerance": "yolo"}), 400,
                   "VALIDATION_ERROR")
    error_envelope(optimize({"model_name": "Llama-3.1-8B", "hardware": "TPU"}), 400,
                   "UNKNOWN_HARDWARE")


def test_get_model_data_has_every_model_info_field():
    r = g.request("GET", "/api/model/get-model-data", headers={"X-API-Key": READ})
    assert r.status == 200, r.body
    # seed §5.1.1 model_info, and parameters_millions of its ER diagram
    fields = {"id", "model_name", "framework", "total_parameters_millions", "parameters_millions",
              "model_size_mb", "architecture_type", "precision", "task_type"}
    for m in r.json()["data"]:
        assert fields <= set(m), fields - set(m)
        assert m["framework"] == "PyTorch" and m["id"] > 0
        assert m["parameters_millions"] == m["total_parameters_millions"] > 0


if __name__ == "__main__":
    main(globals())
