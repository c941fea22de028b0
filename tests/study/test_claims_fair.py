"""Issue 17: claim checks compare like with like and say which budgets they compared."""

from repspace.study.claims import check_claims
from repspace.study.results import build_tables

from tests.study.records import record


def test_pt_lora_is_compared_with_lora_at_the_same_rank():
    recs = []
    for s in (0, 1):
        for b, tp, score in ((2, 50, 0.9), (8, 200, 0.3)):  # lora r=2 scores high, r=8 low
            recs.append(
                record("lora", s, budget=b, field="r", trainable=tp, score=score + 0.01 * s)
            )
        recs.append(record("pt_lora", s, budget=8, field="r", trainable=200, score=0.5 + 0.01 * s))
    claims = {c["claim"]: c for c in check_claims(build_tables(recs))}
    c = claims["PT-PEFT scores higher than vanilla PEFT"]
    # against lora's first budget (r=2, 0.9) it would "not hold"; at r=8 (0.3) it holds
    assert c["verdict"] == "holds", c  # two seeds: t-intervals, and no one-seed flag
    assert (
        "pt_lora 0.505 ± 0.064 (r=8" in c["evidence"] and "lora 0.305 ± 0.064 (r=8" in c["evidence"]
    ), c
