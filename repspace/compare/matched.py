"""`repspace compare --match-layers` when the tuned model has another depth (issue 19.6):
compare *matched* layer pairs instead of same-name ones.

Block expansion (LLaMA-Pro), peft's ``layer_replication`` or pruning change the number of
blocks, so the same-name pairing the comparison normally uses does not exist (or pairs the
wrong blocks).  Here each model's own blocks are captured on the same probe batches
(:func:`repspace.capture.capture`, pooled, every row kept), the cross-layer linear CKA matrix
C[i, j] = CKA(base block i, tuned block j) is matched
(:func:`repspace.metrics.layer_matching.match_layers`, monotone, maximising Σⱼ C[m(j), j]), and
every closed-form metric of the comparison is computed for each pair (m(j), j) from one
:class:`~repspace.statistics.LayerwiseMoments` with those explicit pairs (float64).  The
result's layers are the tuned model's blocks; ``analyses["layer_matching"]`` says which base
block each one was compared with.  Sample-based metrics, spectra and the embedding are not
computed on this path.  Memory: every pooled row of every block of both models (n × d each).
"""

from __future__ import annotations

__all__ = ["compare_matched"]


def compare_matched(
    base,
    tuned,
    name: str,
    batches_fn,
    *,
    layers="blocks",
    pooling: str = "mean",
    batch_size: int = 32,
    device: str | None = None,
    metrics=None,
    progress: bool = False,
) -> tuple[dict, list[str], dict]:
    """``(metrics {tuned layer: {metric: value}}, tuned layer order, layer_matching dict)`` of
    one tuned checkpoint against the base, layers paired by matching."""
    from repspace.compare.layer_matching import capture_each, matching_record
    from repspace.metrics import cka_matrix
    from repspace.metrics.layer_matching import match_layers
    from repspace.statistics import LayerwiseMoments

    xs, ys = capture_each(
        base.model,
        tuned.model,
        batches_fn,
        layers,
        layers,
        pooling=pooling,
        batch_size=batch_size,
        device=device,
        progress=progress,
        name=repr(name),
    )
    matrix, base_names, tuned_names = cka_matrix(xs, ys, precision="float64")
    m = match_layers(matrix, base_names, tuned_names)
    pairs = [(b, t) for t, b, _ in m.pairs()]
    acc = LayerwiseMoments(pairs=pairs, precision="float64")
    acc.update({b: xs[b] for b in dict.fromkeys(b for b, _ in pairs)}, ys)
    rows = acc.compute(metrics=metrics)
    per_layer = {t: dict(rows[(b, t)]) for b, t in pairs}
    info = {**matching_record(m), "paired_by_matching": True}
    return per_layer, list(ys), info
