"""Hand-made cell records (the cells/*.json payload) for table and figure tests."""

LAYERS = ["vision.layers.0", "vision.layers.1", "text.layer.0", "text.layer.1"]


def record(
    method,
    seed=0,
    task="vqa",
    budget=None,
    field=None,
    fraction=1.0,
    score=0.5,
    cka=0.9,
    ratio=0.9,
    trainable=100,
):
    label = f"{task}-{method}-{'' if budget is None else f'{field}{budget}-'}d{fraction}-s{seed}"
    metrics = {}
    for i, layer in enumerate(LAYERS):
        base = 10.0 + i
        metrics[layer] = {
            "linear_cka": cka - 0.01 * i,
            "linear_cka_debiased": cka - 0.02 * i,
            "effective_rank_base": base,
            "effective_rank_tuned": base * ratio,
            "frechet_distance": 1 - cka,
        }
    return {
        "schema": "repspace.study.cell",
        "key": label,
        "label": label,
        "cell": {
            "task": task,
            "method": method,
            "budget_field": field,
            "budget": budget,
            "data_fraction": None if method == "base" else fraction,
            "seed": seed,
        },
        "scores": {"vqa_accuracy": score},
        "layers": list(LAYERS),
        "metrics": metrics,
        "params": {"trainable": 0 if method == "base" else trainable, "total": 1000},
        "seconds": {"train": 1.0, "compare": 0.5},
    }
