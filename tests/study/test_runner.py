"""Caching, reruns of changed cells, interruption and failures (stub trainer/compare)."""

import json

import pytest

from repspace.study import StudyConfig, run_study

from tests.study.conftest import StubTrainer


def config(**kw):
    data = {
        "name": "r",
        "methods": ["base", "lora", "adapter"],
        "seeds": [0, 1],
        "budgets": {"lora": [2, 4]},
        "steps": 3,
        "n_train": 20,
        "n_eval": 4,
    }
    data.update(kw)
    return StudyConfig.from_dict(data)


def base_scores(config, cell):
    return {"vqa_accuracy": 0.1}


def run(cfg, out, trainer, comparer, **kw):
    return run_study(
        cfg,
        out,
        progress=False,
        train_fn=trainer,
        compare_fn=comparer,
        base_score_fn=base_scores,
        figures=False,
        **kw,
    )


def test_second_run_trains_nothing(tmp_path, trainer, comparer):
    first = run(config(), tmp_path, trainer, comparer)
    # 6 trained cells + the base once (not once per seed)
    assert len(trainer.calls) == 6 and len(first.computed) == 7 and not first.cached
    # the default probes: the task's (builtin) then general text, for every cell
    assert [c[2]["probe"] for c in comparer.calls] == ["builtin", "general"] * 7
    assert comparer.calls[0][:2] == ("embedded", ["embedded"])  # the base cell: base vs base
    again = StubTrainer()
    second = run(config(), tmp_path, again, comparer)
    assert again.calls == [] and len(second.cached) == 7 and not second.computed
    assert second.records == first.records
    rec = json.loads(next((tmp_path / "cells").glob("vqa-lora-r2-d1-s0-*.json")).read_text())
    assert rec["scores"]["per_type/color"] >= 0 and rec["params"]["total"] == 1000
    assert rec["layers"] and rec["metrics"][rec["layers"][0]]["linear_cka"] <= 1.0
    assert (tmp_path / "results" / "cells.csv").is_file()
    assert (tmp_path / "study.json").is_file() and (tmp_path / "summary.md").is_file()


def test_changed_config_reruns_only_changed_cells(tmp_path, trainer, comparer):
    run(config(), tmp_path, trainer, comparer)
    again = StubTrainer()
    res = run(config(options={"adapter": {"width": 3}}, seeds=[0, 1, 2]), tmp_path, again, comparer)
    # adapter changed (2 old seeds + 1 new) + lora's new seed (2 budgets); the base (once
    # per task) is cached
    assert sorted(c.method for c in again.calls) == ["adapter"] * 3 + ["lora"] * 2
    assert all(c.method_options == {"width": 3} for c in again.calls if c.method == "adapter")
    assert sorted(res.computed) == sorted(
        [
            "vqa-lora-r2-d1-s2",
            "vqa-lora-r4-d1-s2",
            "vqa-adapter-d1-s0",
            "vqa-adapter-d1-s1",
            "vqa-adapter-d1-s2",
        ]
    )


def test_interrupted_study_resumes_without_retraining(tmp_path, comparer):
    stopper = StubTrainer(fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(config(), tmp_path, stopper, comparer)
    done = sorted(p.name for p in (tmp_path / "cells").glob("*.json"))
    assert len(done) == 3  # the base and the first two lora cells; the 3rd was training
    again = StubTrainer()
    res = run(config(), tmp_path, again, comparer)
    assert len(again.calls) == 4  # only the interrupted cell and the three after it
    assert again.calls[0].output_dir == stopper.calls[2].output_dir  # same run folder: resumes
    assert len(res.records) == 7 and len(res.cached) == 3


def test_failed_cell_is_reported_and_retried(tmp_path, comparer):
    broken = StubTrainer(fail_at=2, exc=RuntimeError)
    res = run(config(), tmp_path, broken, comparer)
    assert (
        list(res.failed) == ["vqa-lora-r2-d1-s1"]
        and "RuntimeError" in res.failed["vqa-lora-r2-d1-s1"]
    )
    assert (tmp_path / "cells" / "vqa-lora-r2-d1-s1.error.txt").is_file()
    assert "Failed cells" in (tmp_path / "summary.md").read_text()
    again = StubTrainer()
    res2 = run(config(), tmp_path, again, comparer)
    assert len(again.calls) == 1 and not res2.failed
    assert not (tmp_path / "cells" / "vqa-lora-r2-d1-s1.error.txt").exists()


def test_force_recomputes_everything(tmp_path, trainer, comparer):
    run(config(), tmp_path, trainer, comparer)
    again = StubTrainer()
    res = run(config(), tmp_path, again, comparer, force=True)
    assert len(again.calls) == 6 and len(res.computed) == 7


def test_two_probes_give_per_probe_columns_and_a_skipped_probe_is_reported(tmp_path, trainer):
    """Every cell is compared on each probe; the first fills ``metrics`` (the un-prefixed
    columns), each adds ``<probe>:...`` columns; a probe after the first that the model
    cannot read is recorded with its reason (NaN columns, a summary section), not fatal."""
    from tests.study.conftest import StubCompare

    class PickyCompare(StubCompare):
        def __call__(self, base, tuned, **kw):
            if kw["probe"] == "words.txt" and "adapter" in tuned[0]:
                raise ValueError("its tokenizer maps 76% of the probe's tokens to [UNK]")
            out = super().__call__(base, tuned, **kw)
            if kw["probe"] != "builtin":  # another probe: other numbers
                name = out.tuned_names[0]
                for layer, m in out.metrics[name].items():
                    m["effective_rank_tuned"] = m["effective_rank_base"] * 0.5
            return out

    cfg = config(
        methods=["base", "lora", "adapter"],
        seeds=[0],
        budgets={},
        compare={"probe": ["builtin", "general", "words.txt"]},
    )
    res = run(cfg, tmp_path, trainer, PickyCompare())
    assert not res.failed
    by = {r["method"]: r for r in res.tables.cells}
    lora, adapter = by["lora"], by["adapter"]
    assert lora["general:erank_ratio"] == pytest.approx(0.5)
    assert lora["words:erank_ratio"] == pytest.approx(0.5)
    assert (
        lora["task:erank_ratio"] == pytest.approx(lora["erank_ratio"])
        and lora["erank_ratio"] != 0.5
    )
    assert adapter["general:erank_ratio"] == pytest.approx(0.5)
    assert adapter["words:erank_ratio"] != adapter["words:erank_ratio"]  # NaN: skipped
    rec = next(r for r in res.records if r["cell"]["method"] == "adapter")
    assert "[UNK]" in rec["probe_errors"]["words"] and set(rec["probes"]) == {"task", "general"}
    summary = (tmp_path / "summary.md").read_text()
    assert "## Probes skipped" in summary and "general erank ratio" in summary
