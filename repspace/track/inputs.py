"""The probe a tracker measures on, as input batches built once and reused for every step.

The batches are `repspace compare`'s: the same probe source and seeded subset
(:func:`repspace.probe.load_probe`), the same processor choice (the base's, checked on the
probe texts by :func:`repspace.probe.processors.choose_processor`), the same per-batch
padding and truncation (:func:`repspace.probe.make_batches`) — so a tracked value equals
`repspace compare` of the checkpoint saved at that step.  Under ``torch.distributed`` each
rank keeps its contiguous block of whole batches (:func:`repspace.distributed.batch_shard`):
concatenated in rank order they are the single-process batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repspace._constraints import validate
from repspace.track.options import TrackSettings

__all__ = ["probe_set", "processor_for", "probe_batches", "MIN_SAMPLES"]

MIN_SAMPLES = 4  # the debiased estimators need four samples (compare refuses fewer too)


def probe_set(probe, num_samples: int | None = None, seed: int = 0, pooling: str = "mean"):
    """``probe`` (a :class:`~repspace.probe.ProbeSet`, a source ``load_probe`` reads — a
    file, a folder, ``"general"``, ``"builtin"`` — or a list of texts) as a ProbeSet of
    ``num_samples`` seeded samples (all when None)."""
    from repspace.probe import ProbeSet, load_probe

    validate(
        {"num_samples": TrackSettings._constraints["num_samples"]}, {"num_samples": num_samples}
    )
    try:
        if isinstance(probe, ProbeSet):
            out = probe.subset(num_samples, seed)
        elif isinstance(probe, (str, Path)):
            out = load_probe(probe, num_samples=num_samples, seed=seed)
        elif isinstance(probe, Sequence) and all(isinstance(t, str) for t in probe):
            out = ProbeSet(f"<{len(probe)} texts>", list(probe)).subset(num_samples, seed)
        else:
            raise ValueError(
                "give a ProbeSet, a probe source (a .txt/.jsonl/.csv file, an "
                f"image folder, 'general', 'builtin') or a list of texts; got "
                f"{type(probe).__name__}"
            )
    except ValueError as exc:
        raise ValueError(f"probe: {exc}") from None
    if len(out) < MIN_SAMPLES and getattr(pooling, "mode", pooling) != "tokens":
        raise ValueError(
            f"probe: {out.source} has {len(out)} sample(s); the metrics need at least {MIN_SAMPLES}"
        )
    return out


def _local_dir(model) -> str | None:
    """The local folder ``model`` was loaded from (its config's ``_name_or_path``), if any."""
    from repspace.layer_table import unwrap_model

    name = getattr(getattr(unwrap_model(model), "config", None), "_name_or_path", None)
    return str(name) if name and Path(str(name)).is_dir() else None


def processor_for(model, probe, *, processor=None, base_spec: str | None = None, fallback=None):
    """The tokenizer / processor that builds the probe inputs.

    ``processor`` when given; otherwise, as compare chooses, the base's: the one shipped
    with ``base_spec`` (a base folder) or with the local folder the model was loaded from,
    then ``fallback`` (e.g. the Trainer's ``processing_class``).  Each candidate is checked
    on the probe texts; a one-line ``ValueError`` when none is usable.
    """
    from repspace.probe import model_modalities
    from repspace.probe.processors import choose_processor

    candidates = []
    if processor is not None:
        candidates.append(("processor", processor))
    else:
        from repspace.checkpoints.loader import load_processor

        for spec in dict.fromkeys(s for s in (base_spec, _local_dir(model)) if s):
            loaded = load_processor(spec)
            if loaded is not None:
                candidates.append((spec, loaded))
        if fallback is not None:
            candidates.append(("the trainer's processing_class", fallback))
    if not candidates:
        raise ValueError(
            "processor: no tokenizer or processor to build the probe inputs with "
            "(the model was not loaded from a local folder); pass processor="
        )
    try:
        return choose_processor(candidates, model_modalities(model), probe.texts)
    except ValueError as exc:
        raise ValueError(f"processor: {exc}") from None


def probe_batches(
    probe, model, processor, *, batch_size: int, max_length: int, rows: range | None = None
) -> list[dict]:
    """This process's probe batches (``rows``: its shard; all when None), as CPU tensors."""
    from repspace.probe import make_batches

    local = probe if rows is None else (probe.select(rows) if len(rows) else None)
    if local is None:
        return []
    try:
        return list(
            make_batches(local, model, processor, batch_size=batch_size, max_length=max_length)
        )
    except ValueError as exc:
        raise ValueError(f"probe: {exc}") from None
