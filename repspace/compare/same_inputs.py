"""Every model of a comparison reads the same token ids as meaning the same text.

A comparison builds one set of probe inputs, with one tokenizer (the base's, unless it is
unusable: :func:`repspace.probe.processors.choose_processor`), and feeds the same token ids
to every model.  A checkpoint whose own tokenizer turns the probe texts into *other* ids
(another vocabulary, another numbering of the same words, other special tokens) would be
fed the other model's ids: numbers that look fine and mean nothing.  :func:`check_same_tokens`
compares each loaded checkpoint's own usable tokenizer with the one that builds the inputs, on
the probe texts themselves, on every path of ``compare`` (one model or two, ``--base-override``,
``--config``, ``--match-layers``, the analyses) and of ``weights --probe / --merge-dtype``.
An adapter carries no tokenizer of its own: it is checked through the model it is applied
onto (``--base-override`` applies it onto another model, whose tokenizer is then checked).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["check_same_tokens", "probe_processor"]

_SAMPLE = 64  # probe texts encoded by each tokenizer


def _ids(tokenizer, texts: Sequence[str]) -> list[list[int]] | None:
    try:
        return [
            list(map(int, row))
            for row in tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        ]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot encode: choose_processor decides
        return None


def check_same_tokens(
    used,
    checkpoints: Sequence[tuple[str, object]],
    modalities: Sequence[str],
    texts: Sequence[str] | None,
) -> None:
    """Raise a one-line ``ValueError`` naming the checkpoint when one of ``checkpoints``
    (``(what, processor)``, e.g. ``("tuned checkpoint lora-r8", proc)``) ships a usable
    tokenizer that encodes the probe ``texts`` differently from ``used``, the processor the
    inputs are built with."""
    from repspace.probe.processors import processor_problem
    from repspace.probe.prompts import tokenizer_of

    if not texts or "text" not in modalities:
        return
    reference = tokenizer_of(used)
    if reference is None:
        return
    sample = list(texts[:_SAMPLE])
    expected = None
    for what, proc in checkpoints:
        own = tokenizer_of(proc)
        if own is None or own is reference or proc is used:
            continue
        if processor_problem(proc, modalities, sample) is not None:
            continue  # unusable (e.g. an empty tokenizer saved without files): not its tokenizer
        expected = expected if expected is not None else _ids(reference, sample)
        got = _ids(own, sample)
        if expected is None or got is None or got == expected:
            continue
        i = next((k for k, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b), 0)
        raise ValueError(
            f"{what}: its tokenizer ({type(own).__name__}, {len(own)} tokens) turns the probe "
            f"texts into other token ids than the one the inputs are built with "
            f"({type(reference).__name__}, {len(reference)} tokens): e.g. {sample[i][:40]!r} is "
            f"{got[i][:8]} to it, {expected[i][:8]} as built, so its model would read another "
            "model's token ids; compare checkpoints that share a tokenizer (an adapter through "
            "--base-override only onto a model with the base's tokenizer)"
        )


def probe_processor(base_ck, tuned_cks: Sequence, texts: Sequence[str]):
    """The tokenizer / processor that writes the probe batches of a comparison: the base's
    unless it is unusable (e.g. an empty vocabulary), checked to write every model's ids as
    its own would (:func:`check_same_tokens`).  One place for the run and ``--calibrate``."""
    from repspace.probe import model_modalities
    from repspace.probe.processors import choose_processor

    modalities = model_modalities(base_ck.model)
    processor = choose_processor(
        [(base_ck.spec, base_ck.processor), *((t.spec, t.processor) for t in tuned_cks)],
        modalities,
        texts,
    )
    check_same_tokens(
        processor,
        [
            (f"base checkpoint {base_ck.spec}", base_ck.processor),
            *((f"tuned checkpoint {t.spec}", t.processor) for t in tuned_cks),
        ],
        modalities,
        texts,
    )
    return processor
