"""What matrix's e2e tests (test_matrix*.py) share: the seed's
simulate-performance payload and a grove started for them with its API
keys."""

from grove import FAST_HASH, Grove, add_key

# GreenMatrix §6.1.2, as written (read-only: tests copy it with dict(SEED_SIMULATE, …))
SEED_SIMULATE = {
    "model_name": "BERT-Large",
    "framework": "PyTorch",
    "task_type": "Inference",
    "parameters_millions": 340,
    "model_size_mb": 1340,
    "precision": "FP32",
    "architecture_type": "transformer",
    "performance_requirements": {
        "max_latency_ms": 100,
        "min_throughput_qps": 10,
        "budget_limit": 1000,
    },
}


def start(*keys, **grove_kw):
    """A grove that reads new keys every 200 ms (cheap password hashing),
    and an API key for each (name, scopes) in keys, in their order."""
    g = Grove("--gate-refresh", "200ms", *FAST_HASH, **grove_kw)
    return (g,) + tuple(add_key(g, name, scopes) for name, scopes in keys)
