"""matrix's cost, energy and carbon routes over real sockets
(docs/matrix.md "Cost, energy and carbon"): POST /api/costs/process-summary
over series written with the seed's table names through POST /api/v1/write,
checked against figures computed by hand; the period's boundaries, a
process that appears mid-period, a process without power data (modelled,
estimated), the idle remainder; GET /api/recommendations/cross-region;
GET /api/cost-models with the simulator's cost per 1,000 inferences; bad
input answered with the seed's error envelope."""

import json

from grove import FAST_HASH, Grove, Postgres, add_key, eventually, main
from matrix_fixture import start

g = None
READ = WRITE = None

T0 = 1705312800 * 10**9  # 2024-01-15T10:00:00Z
S = 10**9


def write(lines):
    r = g.request("POST", "/api/v1/write", body=("\n".join(lines) + "\n").encode(),
                  headers={"X-API-Key": WRITE})
    assert r.status == 204, (r.status, r.body)


def h1_lines():
    lines = []
    # host h1 every 10 s from T0 to T0+70 s: 500 W, 50 % CPU. The samples at
    # T0 (covering (T0-10 s, T0]) and T0+70 s (covering (T0+60, T0+70]) lie
    # outside [T0, T0+60 s) and must count for nothing.
    for i in range(0, 8):
        lines.append("host_overall_metrics,host=h1 total_power_consumption=500,total_cpu_usage=50 %d"
                     % (T0 + i * 10 * S))
    # trainer (pid 100) through the period: 4 cores, 1 GPU, 16 GiB, 300 W
    for i in range(1, 7):
        lines.append("host_process_metrics,host=h1,process=trainer,pid=100 cpu_usage_percent=400,"
                     "gpu_utilization_percent=100,memory_usage_mb=16384,power_consumption_watts=300 %d"
                     % (T0 + i * 10 * S))
    # server (pid 200) appears at T0+40 s: 1 core, 1 GiB, 50 W
    for i in range(4, 7):
        lines.append("host_process_metrics,host=h1,process=server,pid=200 cpu_usage_percent=100,"
                     "gpu_utilization_percent=0,memory_usage_mb=1024,power_consumption_watts=50 %d"
                     % (T0 + i * 10 * S))
    # etl (pid 300): 2 cores, no power series
    for i in range(1, 7):
        lines.append("host_process_metrics,host=h1,process=etl,pid=300 cpu_usage_percent=200 %d"
                     % (T0 + i * 10 * S))
    # another host's process, and a VM's process: not h1's
    lines.append("host_process_metrics,host=h2,process=trainer,pid=100 cpu_usage_percent=800 %d"
                 % (T0 + 30 * S))
    lines.append("vm_process_metrics,host=h1,vm=vm-1,process=web,pid=7 cpu_usage_percent=100,"
                 "power_consumption_watts=20 %d" % (T0 + 30 * S))
    # a host whose name needs escaping in line protocol, and a prefix of it
    lines.append("host_process_metrics,host=rack\\ 1\\,a\\=b,process=odd,pid=1 cpu_usage_percent=100 %d"
                 % (T0 + 30 * S))
    lines.append("host_process_metrics,host=rack,process=other,pid=2 cpu_usage_percent=100 %d"
                 % (T0 + 30 * S))
    return lines


def setup():
    global g, READ, WRITE
    g, READ, WRITE = start(("k-read", "read"), ("k-write", "write"))
    write(h1_lines())


def post(body, k=None, path="/api/costs/process-summary"):
    return g.request("POST", path, body=json.dumps(body).encode(),
                     headers={"X-API-Key": k or READ, "Content-Type": "application/json"}, timeout=30)


def get(path, k=None):
    return g.request("GET", path, headers={"X-API-Key": k or READ}, timeout=60)


def near(a, b, rel=1e-6):
    return a is not None and abs(a - b) <= rel * abs(b) + 1e-12


OWN = {"from": "2024-01-15T10:00:00Z", "to": "2024-01-15T10:01:00Z", "host": "h1",
       "provider": "onprem", "region": "us-virginia", "cost_per_hour": 10, "vcpus": 32,
       "memory_gib": 256, "gpu_count": 2, "hardware": "A100-SXM4-80GB"}


def summary(body):
    r = post(body)
    assert r.status == 200, (r.status, r.body)
    b = r.json()
    assert b["status"] == "success"
    return b["data"]


def by_name(d):
    return {p["process_name"]: p for p in d["processes"]}


def test_process_costs_match_hand_computation():
    d = summary(OWN)
    assert d["period"] == {"from": "2024-01-15T10:00:00Z", "to": "2024-01-15T10:01:00Z",
                           "hours": 1 / 60}
    pr = d["pricing"]
    # OpenCost's split of 10 USD/h by 32 vCPU x 0.031611 = 1.011552,
    # 256 GiB x 0.004237 = 1.084672, 2 GPU x 0.95 = 1.9 (sum 3.996224)
    assert near(pr["split"]["cpu_per_hour"], 2.5312695)    # 10 x 1.011552 / 3.996224
    assert near(pr["split"]["gpu_per_hour"], 4.7544882)    # 10 x 1.9 / 3.996224
    assert near(pr["split"]["ram_per_hour"], 2.7142422)    # 10 x 1.084672 / 3.996224
    assert pr["electricity_billed"] is True and pr["pue"] == 1.58
    p = by_name(d)
    assert set(p) == {"trainer", "server", "etl"}, p.keys()  # not h2's, not vm-1's
    t = p["trainer"]
    assert t["pid"] == "100" and t["power_source"] == "measured" and t["estimated"] is False
    assert near(t["cpu_core_hours"], 240 / 3600) and near(t["gpu_hours"], 60 / 3600)
    # cpu: 2.5312695 x 240 core-s / (32 x 3600) = 0.00527348
    assert near(t["cost"]["cpu"], 0.00527348, 1e-5)
    # gpu: 4.7544882 x 60 GPU-s / (2 x 3600) = 0.03962074
    assert near(t["cost"]["gpu"], 0.03962074, 1e-5)
    # ram: 2.7142422 x 16 GiB x 60 s / (256 x 3600) = 0.00282734
    assert near(t["cost"]["ram"], 0.00282734, 1e-5)
    # energy: 300 W x 60 s = 18,000 J = 0.005 kWh; x PUE 1.58 = 0.0079 kWh
    assert near(t["it_energy_kwh"], 0.005) and near(t["energy_kwh"], 0.0079)
    # electricity: 0.0079 x 0.0895 = 0.00070705; carbon 0.0079 x 366 = 2.8914 g
    assert near(t["cost"]["electricity"], 0.00070705) and near(t["carbon_gco2e"], 2.8914)
    assert near(t["cost"]["total"], 0.04842860, 1e-5)


def test_a_process_that_appears_mid_period_is_costed_from_its_first_interval():
    s = by_name(summary(OWN))["server"]
    # first sample at T0+40 s covers (T0+30, T0+40] (its own 10 s spacing):
    # 30 s in all
    assert s["first_seen"] == "2024-01-15T10:00:30Z" and s["last_seen"] == "2024-01-15T10:01:00Z"
    assert near(s["hours"], 30 / 3600)
    # 50 W x 30 s = 1,500 J = 0.000416667 kWh; x 1.58 = 0.000658333 kWh
    assert near(s["energy_kwh"], 0.000658333, 1e-5)
    # cpu 2.5312695 x 30 / (32 x 3600) = 0.00065918; ram 2.7142422 x 30 / (256 x 3600) = 0.00008835
    assert near(s["cost"]["cpu"], 0.00065918, 1e-4) and near(s["cost"]["ram"], 0.00008835, 1e-4)
    assert s["cost"]["gpu"] == 0


def test_a_process_without_power_data_is_modelled_and_marked_estimated():
    e = by_name(summary(OWN))["etl"]
    assert e["power_source"] == "modelled" and e["estimated"] is True
    # Cloud Carbon Footprint per vCPU: (3.5 - 0.74) W x 120 core-s = 331.2 J
    # = 0.000092 kWh; x 1.58 = 0.00014536 kWh; x 366 = 0.05320176 g
    assert near(e["it_energy_kwh"], 0.000092) and near(e["carbon_gco2e"], 0.05320176)


def test_idle_is_the_host_less_its_processes():
    d = summary(OWN)
    idle, tot = d["idle"], d["totals"]
    assert idle["name"] == "__idle__"
    # host energy 500 W x 60 s = 30,000 J; processes 18,000 + 1,500 + 331.2
    # = 19,831.2 J; idle 10,168.8 J = 0.00282467 kWh
    assert near(idle["it_energy_kwh"], 0.00282467, 1e-5)
    # gpu: 4.7544882 / 60 h - 0.03962074 (trainer) = 0.03962074
    assert near(idle["cost"]["gpu"], 0.03962074, 1e-5)
    # the host's whole cost: 10 USD/h x 1/60 h + 30,000 J = 0.00833333 kWh
    # x 1.58 x 0.0895 = 0.16666667 + 0.00117842 = 0.16784508, allocated + idle
    assert near(tot["cost"]["total"], 0.16784508, 1e-6)
    assert near(tot["allocated_cost"] + tot["idle_cost"], tot["cost"]["total"], 1e-9)
    assert near(tot["host_hours"], 1 / 60) and tot["host_power"] == "measured"


def test_a_timeline_splits_the_period_into_steps():
    d = summary(dict(OWN, step_s=30))
    tl = d["timeline"]
    assert [(b["from"], b["to"]) for b in tl] == [("2024-01-15T10:00:00Z", "2024-01-15T10:00:30Z"),
                                                  ("2024-01-15T10:00:30Z", "2024-01-15T10:01:00Z")]
    # each half: the host's 500 W x 30 s = 15,000 J = 0.00416667 kWh IT, x 1.58
    for b in tl:
        assert near(b["host_hours"], 30 / 3600) and near(b["energy_kwh"], 15000 / 3.6e6 * 1.58)
    # the server ran only in the second half: its whole cost is the difference
    server = by_name(d)["server"]["cost"]["total"]
    assert near(tl[1]["allocated_cost"] - tl[0]["allocated_cost"], server, 1e-6)
    # the steps add up to the period
    assert near(sum(b["cost"]["total"] for b in tl), d["totals"]["cost"]["total"], 1e-9)
    assert near(sum(b["carbon_gco2e"] for b in tl), d["totals"]["carbon_gco2e"], 1e-9)
    assert summary(OWN)["timeline"] is None
    r = post(dict(OWN, step_s=0.001))
    assert r.status == 400 and r.json()["error_code"] == "VALIDATION_ERROR"
    r = post(dict(OWN, **{"to": "2024-01-16T10:00:00Z", "step_s": 1}))
    assert r.status == 400 and r.json()["error_code"] == "TOO_MANY_BUCKETS"


def test_period_boundaries_cut_intervals():
    # [T0+15 s, T0+45 s): trainer's samples at 20, 30, 40 count whole, the one
    # at 50 covers (40, 50] of which 40-45 counts: 5 + 10 + 10 + 5 = 30 s
    d = summary(dict(OWN, **{"from": T0 + 15 * S, "to": T0 + 45 * S}))
    t = by_name(d)["trainer"]
    assert near(t["hours"], 30 / 3600) and near(t["it_energy_kwh"], 300 * 30 / 3.6e6)
    assert t["first_seen"] == "2024-01-15T10:00:15Z" and t["last_seen"] == "2024-01-15T10:00:45Z"
    # server's first interval (30, 40] is cut at... nothing: it starts after 15 s
    assert near(by_name(d)["server"]["hours"], 15 / 3600)  # (30, 40] + (40, 45)


def test_trapezoid_integration():
    # instantaneous readings: trainer's 300 W is flat from 10 s to 60 s: 50 s
    t = by_name(summary(dict(OWN, integration="trapezoid")))["trainer"]
    assert near(t["it_energy_kwh"], 300 * 50 / 3.6e6) and near(t["hours"], 50 / 3600)


def test_a_cloud_instance_prices_the_host_and_not_its_electricity():
    d = summary({"from": "2024-01-15T10:00:00Z", "to": "2024-01-15T10:01:00Z", "host": "h1",
                 "instance_type": "p4d.24xlarge"})
    pr = d["pricing"]
    assert pr["provider"] == "aws" and pr["region"] == "us-east-1" and pr["cost_per_hour"] == 32.7726
    assert pr["vcpus"] == 96 and pr["memory_gib"] == 1152 and pr["gpu_count"] == 8
    assert pr["electricity_billed"] is False
    # 96 vCPU x 0.031611 = 3.034656, 1,152 GiB x 0.004237 = 4.881024, 8 GPU x
    # 0.95 = 7.6 (sum 15.51568): GPU 32.7726 x 7.6 / 15.51568 = 16.0529065
    assert near(pr["split"]["gpu_per_hour"], 16.0529065) and near(pr["split"]["cpu_per_hour"], 6.4098749)
    t = by_name(d)["trainer"]
    assert t["cost"]["electricity"] == 0 and t["electricity_value"] > 0
    # the host's cost is its price over the hour's sixtieth: 32.7726 / 60
    assert near(d["totals"]["cost"]["total"], 32.7726 / 60, 1e-9)


def test_one_process_and_a_vm():
    d = summary(dict(OWN, process="etl"))
    assert [p["process_name"] for p in d["processes"]] == ["etl"]
    v = summary({"from": T0, "to": T0 + 60 * S, "vm": "vm-1", "region": "us-east-1",
                 "provider": "aws"})
    assert [p["process_name"] for p in v["processes"]] == ["web"]
    assert v["scope"] == {"source_type": "vm", "vm": "vm-1"}
    odd = summary(dict(OWN, host="rack 1,a=b"))
    assert [p["process_name"] for p in odd["processes"]] == ["odd"]
    assert [p["process_name"] for p in summary(dict(OWN, host="rack"))["processes"]] == ["other"]


def test_bad_input_gets_the_error_envelope():
    cases = [
        ({"to": "2024-01-15T10:01:00Z", "host": "h1", "region": "us-east-1"}, 400, "VALIDATION_ERROR"),
        (dict(OWN, to="2024-01-15T09:00:00Z"), 400, "INVALID_PERIOD"),
        (dict(OWN, vm="v"), 400, "VALIDATION_ERROR"),
        ({k: v for k, v in OWN.items() if k not in ("region", "provider")}, 400, "VALIDATION_ERROR"),
        (dict(OWN, region="mars-1"), 400, "UNKNOWN_REGION"),
        (dict(OWN, hardware="Z9000"), 400, "UNKNOWN_HARDWARE"),
        (dict(OWN, instance_type="x1.nope"), 400, "UNKNOWN_INSTANCE"),
        (dict(OWN, cost_per_hour=-1), 400, "VALIDATION_ERROR"),
        (dict(OWN, integration="simpson"), 400, "VALIDATION_ERROR"),
        (dict(OWN, host="nobody"), 404, "NO_DATA"),
    ]
    for body, status, code in cases:
        r = post(body)
        assert r.status == status, (body, r.status, r.body)
        b = r.json()
        assert b["status"] == "error" and b["error_code"] == code, (body, b)
        assert b["message"] and "details" in b, b
    r = g.request("POST", "/api/costs/process-summary", body=b"{nope",
                  headers={"X-API-Key": READ, "Content-Type": "application/json"})
    assert r.status == 400 and r.json()["status"] == "error"
    r = g.request("POST", "/api/costs/process-summary", body=json.dumps(OWN).encode(),
                  headers={"Content-Type": "application/json"})
    assert r.status == 401


def cross(q, status=200):
    r = get("/api/recommendations/cross-region?" + q)
    assert r.status == status, (r.status, r.body)
    return r.json()


def test_cross_region_ranks_instances_by_cost_and_every_region_by_carbon():
    d = cross("hardware=A100-SXM4-40GB&gpu_count=8&hours=10&provider=aws&region=us-east-1")["data"]
    w = d["workload"]
    assert w["basis"] == "instance" and w["it_power_w"] == 3200  # 8 x 400 W TDP
    # cost: us-east-1 one p4d.24xlarge (8 GPUs) x 32.7726 x 10 h = 327.726;
    # us-central1 eight a2-highgpu-1g x 3.673385 x 10 h = 293.8708
    assert [(x["provider"], x["region"]) for x in d["ranked_by_cost"]] == \
        [("gcp", "us-central1"), ("aws", "us-east-1")]
    first = d["ranked_by_cost"][0]
    assert near(first["cost"], 293.8708) and first["current"] is False
    # saving: 327.726 - 293.8708 = 33.8552, 10.33 %
    assert near(first["saving"]["absolute"], 33.8552) and near(first["saving"]["percent"], 10.3304, 1e-4)
    assert d["current"]["provider"] == "aws" and near(d["current"]["cost"], 327.726)
    # carbon: 3.2 kW x 10 h = 32 kWh; aws eu-west-3 x PUE 1.15 x 56 g = 2,060.8 g,
    # the least; us-east-1 x 1.15 x 366 = 13,468.8 g; saving 11,408 g
    g0 = d["ranked_by_carbon"][0]
    assert (g0["provider"], g0["region"]) == ("aws", "eu-west-3") and near(g0["carbon_gco2e"], 2060.8)
    assert near(g0["saving"]["absolute"], 11408) and near(d["current"]["carbon_gco2e"], 13468.8)
    assert len(d["ranked_by_carbon"]) == len(d["regions"])
    assert {x["region"] for x in d["not_ranked_by_cost"]} >= {"eu-west-3", "us-virginia"}


def test_cross_region_of_a_power_figure_is_priced_by_electricity():
    d = cross("power_w=1000&hours=100&provider=onprem&region=us-virginia")["data"]
    assert d["workload"]["basis"] == "electricity"
    # 1 kW x 100 h = 100 kWh IT; aws us-east-1: x 1.15 x 0.0895 = 10.2925 USD,
    # the cheapest; onprem us-virginia: x 1.58 x 0.0895 = 14.141 USD
    c0 = d["ranked_by_cost"][0]
    assert (c0["provider"], c0["region"]) == ("aws", "us-east-1") and near(c0["cost"], 10.2925)
    assert near(d["current"]["cost"], 14.141) and near(c0["saving"]["absolute"], 3.8485)
    # no electricity price for the European regions: ranked by carbon only
    assert "eu-central-1" in {x["region"] for x in d["not_ranked_by_cost"]}
    assert "eu-central-1" in {x["region"] for x in d["ranked_by_carbon"]}


def test_cross_region_of_an_instance_type():
    d = cross("instance_type=g6.xlarge")["data"]
    assert d["workload"]["hardware"] == "L4" and d["current"]["region"] == "us-east-1"
    # g6.xlarge 0.8048 x 730 h = 587.504; g2-standard-4 0.706832 x 730 = 515.98736
    assert near(d["ranked_by_cost"][0]["cost"], 515.98736)


def test_cross_region_bad_input():
    for q, status, code in [("", 400, "VALIDATION_ERROR"), ("hardware=Z9000", 400, "UNKNOWN_HARDWARE"),
                            ("power_w=-5", 400, "VALIDATION_ERROR"),
                            ("power_w=100&hours=abc", 400, "VALIDATION_ERROR"),
                            ("power_w=100&region=mars", 400, "UNKNOWN_REGION"),
                            ("instance_type=x1.nope", 400, "UNKNOWN_INSTANCE"),
                            ("power_w=100&basis=barter", 400, "VALIDATION_ERROR")]:
        b = cross(q, status)
        assert b["status"] == "error" and b["error_code"] == code and "details" in b, (q, b)


def test_cost_models_carry_the_simulators_cost_per_1000_inferences_and_rating():
    r = get("/api/cost-models")
    assert r.status == 200, r.body
    b = r.json()
    rows = b["data"]
    assert b["metadata"]["workload"] == {"model_name": "Llama-3.1-8B", "precision": "FP16",
                                         "batch_size": 1, "input_length": 512, "output_length": 128}
    assert len(rows) == b["metadata"]["count"] == 12
    graded = [x for x in rows if x["energy_efficiency_rating"]]
    for x in graded:
        inf = x["inference"]
        # cost per 1,000 = price per hour x 1,000 / (requests/s x 3,600)
        assert near(x["cost_per_1000_inferences"], x["cost_per_hour"] * 1000 / (inf["throughput_qps"] * 3600))
        e = x["energy_efficiency_rating"]
        assert near(e["inferences_per_kwh"], 1000 / x["energy_per_1000_inferences_kwh"])
        assert 0 < e["score"] <= 100 and e["grade"] in "ABCDE"
        assert x["inference"]["replicas"] * x["inference"]["tensor_parallel"] == x["gpu_count"]
    assert max(x["energy_efficiency_rating"]["score"] for x in graded) == 100
    # the A10G publishes no peak: no figures, and why
    a10g = [x for x in rows if x["hardware_type"] == "A10G"]
    assert a10g and a10g[0]["cost_per_1000_inferences"] is None and "excluded" in a10g[0]["inference"]
    # the filters keep working, and the rating stays against the whole catalogue
    l4 = get("/api/cost-models?hardware=L4").json()["data"]
    assert {x["instance"] for x in l4} == {"g6.xlarge", "g2-standard-4"}
    same = {x["instance"]: x["energy_efficiency_rating"]["score"] for x in graded}
    assert all(near(x["energy_efficiency_rating"]["score"], same[x["instance"]]) for x in l4)
    assert [x["region"] for x in get("/api/cost-models?provider=gcp").json()["data"]] == \
        ["us-central1", "us-central1"]
    one = get("/api/cost-models/1").json()["data"]
    assert one["id"] == 1 and one["instance"] == rows[0]["instance"]
    assert get("/api/cost-models/regions").json()["metadata"]["count"] == 13


def test_cost_models_bad_input():
    for path, status, code in [("/api/cost-models/999", 404, "NOT_FOUND"),
                               ("/api/cost-models/abc", 404, "NOT_FOUND"),
                               ("/api/cost-models?model_name=Nope-1B", 400, "UNKNOWN_MODEL"),
                               ("/api/cost-models?precision=FP3", 400, "INVALID_PRECISION"),
                               ("/api/cost-models?batch_size=0", 400, "VALIDATION_ERROR")]:
        r = get(path)
        assert r.status == status, (path, r.status, r.body)
        assert r.json()["error_code"] == code, (path, r.body)



def test_two_instances_on_postgres_cost_what_the_other_was_sent():
    """Scale-out: the series live in PostgreSQL, so a summary on one
    instance costs the processes whose series were written through another,
    with the same figures; cross-region is a computation over the catalogue
    and answers the same on both — b was running before a made the series
    (series_each_key reads the keys other instances made)."""
    pg = Postgres()
    a = b = None
    try:
        a = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        b = Grove("--store", pg.url, "--gate-refresh", "200ms", *FAST_HASH)
        w = add_key(a, "pg-w", "write", store=pg.url)
        rk = add_key(a, "pg-r", "read", store=pg.url)
        keys = [w, rk]
        for k in keys:
            eventually(lambda: b.request("GET", "/auth/me", headers={"X-API-Key": k}).status == 200,
                       what="key loaded")
        r = a.request("POST", "/api/v1/write", body=("\n".join(h1_lines()) + "\n").encode(),
                      headers={"X-API-Key": w})
        assert r.status == 204, (r.status, r.body)

        def summary_on(x):
            r = x.request("POST", "/api/costs/process-summary", body=json.dumps(OWN).encode(),
                          headers={"X-API-Key": rk, "Content-Type": "application/json"}, timeout=30)
            assert r.status == 200, (r.status, r.body)
            return r.json()["data"]
        on_a = summary_on(a)
        on_b = summary_on(b)
        assert set(by_name(on_a)) == {"trainer", "server", "etl"}, on_a
        assert set(by_name(on_b)) == {"trainer", "server", "etl"}, on_b
        assert on_b["processes"] == on_a["processes"] and on_b["totals"] == on_a["totals"]
        assert near(by_name(on_b)["trainer"]["cost"]["total"], 0.04842860, 1e-5)
        q = "/api/recommendations/cross-region?hardware=A100-SXM4-40GB&gpu_count=8&hours=10" \
            "&provider=aws&region=us-east-1"
        ca, cb = (x.request("GET", q, headers={"X-API-Key": rk}) for x in (a, b))
        assert ca.status == cb.status == 200, (ca.body, cb.body)
        assert ca.json()["data"] == cb.json()["data"]
    finally:
        for x in (a, b):
            if x is not None:
                x.stop()
        pg.stop()


if __name__ == "__main__":
    main(globals())
