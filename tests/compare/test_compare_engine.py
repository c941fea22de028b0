"""compare_models: one base forward per batch for k tuned checkpoints; only the asked metrics."""

import math

import pytest
import torch

from repspace.capture import AdapterInactiveWarning, capture_paired
from repspace.checkpoints import LoadedCheckpoint
from repspace.compare import compare, compare_models
from repspace.compare import engine
from repspace.compare.sink import CompareSink
from repspace.closed_forms import summary
from repspace.statistics import LayerwiseMoments, PairedDriftStats
from tests.compare.conftest import SENTENCES, tiny_bert, word_tokenizer

BATCH = 8
N_BATCHES = -(-len(SENTENCES) // BATCH)
FAST = dict(batch_size=BATCH, progress=False, embedding="none", sample_rows=40, seed=3)


def nudged(seed: int, scale: float) -> torch.nn.Module:
    """The base (tiny_bert(0)) with every weight moved by seeded noise: a stand-in fine-tune."""
    model = tiny_bert(0)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


@pytest.fixture(scope="module")
def batches():
    tok = word_tokenizer()
    data = [
        dict(tok(SENTENCES[i : i + BATCH], padding=True, return_tensors="pt"))
        for i in range(0, len(SENTENCES), BATCH)
    ]
    return lambda: iter(data)


@pytest.fixture(scope="module")
def cks():
    base = LoadedCheckpoint("base", "base", "hf", tiny_bert(0))
    return base, [LoadedCheckpoint(f"t{i}", f"t{i}", "hf", nudged(i, 0.02 * i)) for i in (1, 2, 3)]


def count_forwards(*models):
    """Pre-hooks on the top modules: they fire even when early stopping cuts a forward short."""
    counts = [0] * len(models)
    handles = []
    for i, m in enumerate(models):

        def hook(module, args, kwargs, i=i):
            counts[i] += 1

        handles.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    return counts, handles


def same(a, b) -> bool:
    """Bitwise equality of floats, NaN equal to NaN."""
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


def assert_same_metrics(got: dict, want: dict):
    assert list(got) == list(want)  # layers, in order
    for layer in want:
        assert list(got[layer]) == list(want[layer]), layer  # metric keys, in order
        for k in want[layer]:
            assert same(got[layer][k], want[layer][k]), (layer, k, got[layer][k], want[layer][k])


def test_k_tuned_checkpoints_cost_k_plus_one_forwards_per_batch(cks, batches):
    base, tuned = cks
    counts, handles = count_forwards(base.model, tuned[0].model, tuned[1].model)
    try:
        compare_models(base, tuned[:2], batches, **FAST)
    finally:
        for h in handles:
            h.remove()
    assert counts == [N_BATCHES] * 3  # base once per batch, not once per tuned checkpoint
    assert sum(counts) == (2 + 1) * N_BATCHES


@pytest.mark.parametrize("pooling", ["mean", "tokens"])
def test_two_tuned_at_once_equal_two_separate_runs(cks, batches, pooling):
    base, tuned = cks
    both = compare_models(base, tuned[:2], batches, pooling=pooling, **FAST)
    for ck in tuned[:2]:
        one = compare_models(base, [ck], batches, pooling=pooling, **FAST)
        assert both.layers == one.layers
        assert_same_metrics(both.metrics[ck.name], one.metrics[ck.name])
        for name in (base.name, ck.name):
            for layer, sv in one.spectra[name].items():
                assert torch.equal(torch.as_tensor(both.spectra[name][layer]), torch.as_tensor(sv))


def test_single_pair_equals_the_plain_paired_capture(cks, batches):
    """k = 1 gives exactly what capture_paired + CompareSink + compute() gave before."""
    base, tuned = cks
    res = compare_models(base, [tuned[0]], batches, **FAST)
    sink = capture_paired(
        base.model,
        tuned[0].model,
        batches(),
        "blocks",
        batch_size=BATCH,
        progress=False,
        sink=CompareSink(max_rows=40, seed=3, precision="float64"),
    )
    ref = {}
    for (layer, _), row in sink.acc.compute().items():
        row.update(
            engine._sample_metrics(
                sink.samples["base"][layer],
                sink.samples["tuned"][layer],
                set(engine.SAMPLE_METRICS),
                seed=3,
            )
        )
        ref[layer] = row
    assert_same_metrics(res.metrics["t1"], ref)
    assert res.metrics["t1"]["encoder.layer.2"]["linear_cka"] < 0.999  # the models differ


def test_checkpoints_sharing_modules_are_captured_in_separate_passes(cks, batches):
    base, tuned = cks
    twice = [tuned[0], LoadedCheckpoint("again", "again", "hf", tuned[0].model)]
    counts, handles = count_forwards(base.model, tuned[0].model)
    try:
        res = compare_models(base, twice, batches, **FAST)
    finally:
        for h in handles:
            h.remove()
    assert counts == [2 * N_BATCHES, 2 * N_BATCHES]  # hooks on one module tree cannot overlap
    one = compare_models(base, [tuned[0]], batches, **FAST)
    assert_same_metrics(res.metrics["again"], one.metrics["t1"])
    assert_same_metrics(res.metrics["t1"], one.metrics["t1"])


def test_tuned_per_pass_bounds_concurrent_checkpoints_with_the_same_numbers(cks, batches):
    base, tuned = cks
    counts, handles = count_forwards(base.model, *(t.model for t in tuned))
    try:
        split = compare_models(base, tuned, batches, tuned_per_pass=2, **FAST)
    finally:
        for h in handles:
            h.remove()
    assert counts == [2 * N_BATCHES] + [N_BATCHES] * 3  # passes {t1, t2} and {t3}
    joint = compare_models(base, tuned, batches, **FAST)
    for ck in tuned:
        assert_same_metrics(split.metrics[ck.name], joint.metrics[ck.name])
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="^tuned_per_pass must be an integer ≥ 1"):
            compare_models(base, tuned, batches, tuned_per_pass=bad, **FAST)
    with pytest.raises(ValueError, match="tuned_per_pass"):  # before loading anything
        compare("no/such/base", ["no/such/tuned"], tuned_per_pass=0, distributed=False)


def test_inactive_adapter_warning_names_the_checkpoint(cks, batches):
    base, tuned = cks
    copy = LoadedCheckpoint("copy", "copy", "hf", tiny_bert(0))
    with pytest.warns(AdapterInactiveWarning, match="'copy'") as rec:
        compare_models(base, [tuned[0], copy], batches, **FAST)
    assert not any("'t1'" in str(w.message) for w in rec)


# -- only the requested metrics --------------------------------------------------------


@pytest.fixture(scope="module")
def acc(cks, batches):
    base, tuned = cks
    return capture_paired(
        base.model, tuned[1].model, batches(), "blocks", batch_size=BATCH, progress=False
    ).acc


def test_selected_metrics_equal_the_full_computation_bit_for_bit(acc):
    full = acc.compute()
    keys = list(next(iter(full.values())))
    assert len(keys) >= 18 and "subspace_overlap" in keys
    prefixes = keys + ["linear", "effective_rank", "cosine_similarity", "relative"]
    for wanted in [{k} for k in prefixes] + [
        {"mmd_linear", "stable_rank_base", "relative_shift_q50"}
    ]:
        got = acc.compute(metrics=wanted)
        assert list(got) == list(full)
        for pair, row in full.items():
            want = {k: v for k, v in row.items() if any(k.startswith(w) for w in wanted)}
            assert want, wanted
            assert list(got[pair]) == list(want), wanted
            assert all(same(got[pair][k], v) for k, v in want.items()), wanted
    assert all(r == {} for r in acc.compute(metrics={"no_such_metric"}).values())
    again = acc.compute(metrics=None)
    assert list(again) == list(full)
    assert all(
        list(again[p]) == list(r) and all(same(again[p][k], v) for k, v in r.items())
        for p, r in full.items()
    )


COMPUTES = {  # (module, function) -> the metric keys it produces
    (summary, "linear_cka_from_moments"): ("linear_cka",),
    (summary, "procrustes_distance_from_moments"): ("procrustes_distance",),
    (summary, "frechet_distance_from_moments"): ("frechet_distance",),
    (summary, "mmd_linear_from_moments"): ("mmd_linear",),
    (summary, "principal_angles_from_moments"): ("subspace_overlap",),
    # the rows route's forms (a layer whose rows are smaller than its moments)
    (summary, "linear_cka_from_rows"): ("linear_cka",),
    (summary, "procrustes_distance_from_rows"): ("procrustes_distance",),
    (summary, "frechet_distance_from_rows"): ("frechet_distance",),
    (summary, "mmd_linear_from_rows"): ("mmd_linear",),
    (summary, "principal_angles_from_rows"): ("subspace_overlap",),
    (summary, "spectrum_of_rows"): (
        "effective_rank",
        "stable_rank",
        "numerical_rank",
        "participation_ratio",
    ),
    (summary, "spectrum_of_centred"): (
        "effective_rank",
        "stable_rank",
        "numerical_rank",
        "participation_ratio",
    ),
    (summary, "effective_rank_of"): ("effective_rank",),
    (summary, "stable_rank_of"): ("stable_rank",),
    (summary, "numerical_rank_of"): ("numerical_rank",),
    (summary, "participation_ratio_of"): ("participation_ratio",),
    (engine, "rbf_cka"): ("rbf_cka",),
    (engine, "mmd"): ("mmd_rbf",),
    (engine, "mutual_knn_overlap"): ("mutual_knn_overlap",),
}


@pytest.mark.parametrize(
    "metrics,keys",
    [
        (["linear_cka"], {"linear_cka", "linear_cka_debiased"}),
        (
            ["effective_rank_tuned", "cosine_similarity_mean"],
            {"effective_rank_tuned", "cosine_similarity_mean"},
        ),
        (["rbf_cka", "frechet_distance"], {"rbf_cka", "frechet_distance"}),
    ],
)
def test_unrequested_metrics_are_neither_computed_nor_reported(
    cks, batches, monkeypatch, metrics, keys
):
    base, tuned = cks
    calls = {}

    def forbid(where, name, real):
        def wrapper(*args, **kwargs):
            if not any(k.startswith(p) for p in COMPUTES[where, name] for k in keys):
                raise AssertionError(f"{name} ran but only {metrics} were asked for")
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return wrapper

    for where, name in COMPUTES:
        monkeypatch.setattr(where, name, forbid(where, name, getattr(where, name)))

    def no_full_compute(*args, **kwargs):
        raise AssertionError("the full metric set was computed")

    real_compute = LayerwiseMoments.compute
    monkeypatch.setattr(
        LayerwiseMoments,
        "compute",
        lambda self, top_k=10, metrics=None, **kw: (
            no_full_compute() if metrics is None else real_compute(self, top_k, metrics, **kw)
        ),
    )
    real_drift = PairedDriftStats.compute
    monkeypatch.setattr(
        PairedDriftStats,
        "compute",
        lambda self: (
            real_drift(self)
            if any(k.startswith(("cosine", "relative")) for k in keys)
            else no_full_compute()
        ),
    )
    res = compare_models(base, tuned[:2], batches, metrics=metrics, **FAST)
    for name in ("t1", "t2"):
        assert res.metrics[name] and all(set(r) == keys for r in res.metrics[name].values())
    if "effective_rank_tuned" in keys:  # the tuned side's spectrum only, once per layer
        blocks = res.settings["intervals"]["blocks"]  # and once per jackknife replicate
        assert calls["effective_rank_of"] == 2 * len(res.layers) * (1 + blocks)
        assert set(res.intervals["t1"][res.layers[0]]) == keys  # intervals of those keys only


@pytest.mark.parametrize("route", ["rows", "moments"])
def test_a_shared_base_is_decomposed_once_for_all_checkpoints(cks, batches, monkeypatch, route):
    """k tuned checkpoints against one base: the base's spectrum (a d × d decomposition on
    the moments route) is computed once per layer, and the spectrum figures reuse it."""
    base, tuned = cks
    calls = []
    real = {name: getattr(summary, name) for name in ("spectrum_of_rows", "spectrum_of_centred")}
    for name, fn in real.items():
        monkeypatch.setattr(summary, name, lambda c, fn=fn, name=name: calls.append(name) or fn(c))
    monkeypatch.setattr(
        engine, "spectrum", lambda x: pytest.fail("a spectrum was decomposed twice")
    )
    monkeypatch.setattr(LayerwiseMoments, "replicates", lambda *a, **k: {})  # not the jackknife's
    factory = CompareSink.__init__

    def forced(self, *args, **kwargs):
        factory(self, *args, **{**kwargs, "route": route})

    monkeypatch.setattr(CompareSink, "__init__", forced)
    res = compare_models(base, tuned[:2], batches, spectrum_layers=None, **FAST)
    layers = len(res.layers)
    assert len(calls) == 3 * layers  # the base once, each tuned model once
    assert set(calls) == {"spectrum_of_rows" if route == "rows" else "spectrum_of_centred"}
    assert res.settings["statistics"]["routes"] == dict.fromkeys(res.layers, route)


def test_metrics_all_reports_every_registered_measure(cks, batches, tmp_path):
    """`--metrics all`: every registered key on every layer (the opt-in CCA family, shape,
    RSA, neighbourhoods, intrinsic dimension and energy distance included), and the report
    draws one figure per metric family, captioned with every measure it shows."""
    import json

    from repspace.report import write_report
    from repspace.report.figures_families import FAMILY_FIGURES, OWN_FIGURE, family_keys
    from repspace.metrics.registry import REGISTRY

    base, tuned = cks
    res = compare_models(base, tuned[:1], batches, metrics=["all"], **FAST)
    want = {k for k in REGISTRY if k != "linear_cka_null"} | {
        "linear_cka_null_p",
        "linear_cka_null_z",
        "linear_cka_null_resolution",
    }
    for layer in res.layers:
        assert set(res.metrics["t1"][layer]) == want, layer
    assert res.settings["metrics"] == sorted(REGISTRY)
    write_report(res, tmp_path / "r", progress=False)
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    families = {m.family for m in REGISTRY.values()}
    figure_of = {**OWN_FIGURE, **{f: n for n, f in FAMILY_FIGURES.items()}}
    assert families <= set(figure_of)
    for family in families:
        name = figure_of[family]
        assert name in rep["plots"], f"no figure for the {family} family"
        assert all((tmp_path / "r" / f).is_file() for f in rep["plots"][name])
    for name, family in FAMILY_FIGURES.items():
        caption = rep["captions"][rep["plots"][name][0]]
        assert all(m.name in caption for m in family_keys(family)), (family, caption)
    assert "energy distance 2E" in rep["captions"][rep["plots"]["drift"][0]]
    # every measure is in the tables too, one per family, in report.md and report.html
    md, html = ((tmp_path / "r" / f).read_text() for f in ("report.md", "report.html"))
    for key in REGISTRY:
        if key != "linear_cka_null":
            assert f"| {key.replace('_', chr(92) + '_')} |" in md or f"| {key} |" in md, key
            assert f"<th>{key.replace('_', ' ')}</th>" in html, key
