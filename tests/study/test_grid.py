"""Grid expansion and cache keys."""

from repspace.study import StudyConfig, cell_key, expand_grid, plan_study


def config(**kw):
    data = {
        "name": "g",
        "methods": ["base", "lora", "adapter"],
        "seeds": [0, 1],
        "data_fractions": [0.5, 1.0],
        "budgets": {"lora": [2, 4]},
        "steps": 3,
        "n_train": 20,
        "n_eval": 4,
    }
    data.update(kw)
    return StudyConfig.from_dict(data)


def test_grid_is_the_product_and_base_is_once_per_task():
    cells = expand_grid(config(tasks=["vqa", "captioning"]))
    per_task = 1 + 2 * 2 * 2 + 1 * 2 * 2  # base once + lora × budgets × fracs × seeds + adapter
    assert len(cells) == 2 * per_task
    labels = [c.label for c in cells]
    assert len(set(labels)) == len(labels)
    base = [c for c in cells if c.is_base]
    assert [(c.task, c.seed) for c in base] == [("vqa", 0), ("captioning", 0)]
    assert all(c.budget is None and c.data_fraction is None for c in base)
    lora = [c for c in cells if c.method == "lora" and c.task == "vqa"]
    assert {(c.budget, c.data_fraction, c.seed) for c in lora} == {
        (b, f, s) for b in (2, 4) for f in (0.5, 1.0) for s in (0, 1)
    }
    assert all(c.budget_field == "r" for c in lora)
    assert "vqa-lora-r2-d0.5-s1" in labels and "vqa-adapter-d1-s0" in labels


def test_keys_change_only_with_what_affects_the_cell(tmp_path):
    a, b = config(), config(options={"adapter": {"width": 3}})
    ka = {p.label: p.key for p in plan_study(a, tmp_path)}
    kb = {p.label: p.key for p in plan_study(b, tmp_path)}
    changed = {label for label in ka if ka[label] != kb[label]}
    assert changed == {label for label in ka if "-adapter-" in label}
    # the output folder does not enter the key; compare settings do (all cells)
    assert {p.label: p.key for p in plan_study(a, tmp_path / "elsewhere")} == ka
    kc = {p.label: p.key for p in plan_study(config(compare={"num_samples": 8}), tmp_path)}
    assert all(kc[label] != ka[label] for label in ka)
    # a per-method lr override changes only that method
    kd = {p.label: p.key for p in plan_study(config(lr={"lora": 0.01}), tmp_path)}
    assert {label for label in ka if kd[label] != ka[label]} == {
        label for label in ka if "-lora-" in label
    }


def test_plan_paths_and_train_configs(tmp_path):
    planned = plan_study(config(options={"lora": {"alpha": 4}}), tmp_path)
    lora = next(p for p in planned if p.label == "vqa-lora-r4-d0.5-s1")
    cfg = lora.train_config
    assert cfg.method_options == {"alpha": 4, "r": 4}
    assert cfg.data_fraction == 0.5 and cfg.seed == 1 and cfg.steps == 3 and cfg.n_train == 20
    assert cfg.output_dir == str(tmp_path / "runs" / f"{lora.label}-{lora.key[:10]}")
    assert lora.record_path == tmp_path / "cells" / f"{lora.label}-{lora.key[:10]}.json"
    assert cell_key(config(options={"lora": {"alpha": 4}}), lora.cell) == lora.key
    base = planned[0]
    assert base.cell.is_base and base.train_config is None and base.run_dir is None
