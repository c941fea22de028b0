"""Pick the tokenizer / processor that builds the probe inputs, refusing unusable ones.

A checkpoint folder without tokenizer files still "loads" a tokenizer under transformers 5:
an empty one, where every word becomes the unknown token.  Probing with it gives numbers
that look fine and mean nothing, so a processor is checked on the probe texts before use:
the base checkpoint's when it is usable, else the first usable tuned checkpoint's (with a
warning), else a one-line error.  A model that takes images needs an image processor, not
just a tokenizer.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from repspace.probe.prompts import tokenizer_of

__all__ = ["processor_problem", "choose_processor"]

# More unknown tokens than this among the probe's text tokens: the tokenizer does not know
# the language (an empty vocabulary gives 100 %).  Real tokenizers give ~0 % on text in their
# language (byte-level BPE and byte-fallback SentencePiece have no unknown at all); a third
# of the words as [UNK] already feeds the model mostly one embedding, a silent wrong number.
MAX_UNKNOWN_FRACTION = 0.1


def processor_problem(
    processor, modalities: Sequence[str], texts: Sequence[str] | None, spec: str | None = None
) -> str | None:
    """Why ``processor`` (loaded from checkpoint ``spec``) cannot build probe inputs for a model
    taking ``modalities``, or None."""
    if processor is None:
        from repspace.checkpoints.loader import processor_failure

        why = processor_failure(spec) if spec is not None else None
        return "no tokenizer or processor loaded with it" + (f" ({why})" if why else "")
    tok = tokenizer_of(processor)
    if "image" in modalities and tok is processor and not hasattr(processor, "image_processor"):
        reason = getattr(processor, "repspace_processor_error", None)
        return "the model takes images but only a tokenizer loaded, no image processor" + (
            f" (AutoProcessor failed: {reason})" if reason else ""
        )
    if "text" not in modalities or not texts:
        return None
    if tok is None:
        return f"its {type(processor).__name__} has no tokenizer"
    ids = [i for row in tok(list(texts[:64]), add_special_tokens=False)["input_ids"] for i in row]
    if not ids:
        return "its tokenizer turns the probe texts into no tokens"
    unk = tok.unk_token_id
    if unk is not None:
        frac = sum(i == unk for i in ids) / len(ids)
        if frac > MAX_UNKNOWN_FRACTION:
            return (
                f"its tokenizer ({type(tok).__name__}, {len(tok)} tokens) maps {frac:.0%} of "
                f"the probe's tokens to {tok.unk_token} (an empty or wrong vocabulary, or a "
                "probe in a language it does not know: pass --probe with text it can read)"
            )
    return None


def choose_processor(
    candidates: Sequence[tuple[str, object]], modalities: Sequence[str], texts: Sequence[str] | None
):
    """The first usable processor of ``candidates`` (``(checkpoint spec, processor)``, base
    first); a ``UserWarning`` when it is not the base's; ``ValueError`` when none is usable."""
    problems = []
    for i, (spec, proc) in enumerate(candidates):
        problem = processor_problem(proc, modalities, texts, spec)
        if problem is None:
            if i:
                warnings.warn(
                    f"probe inputs built with the processor of {spec}, not the base's "
                    f"({candidates[0][0]}: {problems[0]})",
                    UserWarning,
                    stacklevel=2,
                )
            return proc
        problems.append(problem)
    spec, first = candidates[0][0], problems[0]
    others = "" if len(candidates) == 1 else " (nor do the tuned checkpoints ship a usable one)"
    raise ValueError(
        f"{spec}: {first}{others}; save the model's tokenizer/processor next to its "
        "weights (save_pretrained), or install what its processor needs"
    )
