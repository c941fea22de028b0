"""Hub kernels stay off: no compiled code fetched from the Hub by any model load.

transformers can replace layers by "Hub kernels", compiled code it downloads from the
Hugging Face Hub and imports (``from_pretrained(use_kernels=True)``; transformers 5.25 makes
that the default on GPU machines with the ``kernels`` package).  repspace's promise is that
no file, and no download a file triggers, runs code: every ``from_pretrained`` of a model
passes the keyword :func:`no_hub_kernels` returns, so the default of whatever transformers
is installed never decides.  The other ways in are closed elsewhere: a config's
``attn_implementation`` / ``experts_implementation`` naming a Hub repository is refused at
the door (:mod:`repspace.checkpoints.files`), and the command line sets
``USE_HUB_KERNELS=NO`` before transformers is imported (the switch of its lazily loaded
quantization and MoE kernels).
"""

from __future__ import annotations

import functools

__all__ = ["no_hub_kernels"]


@functools.lru_cache(maxsize=1)
def _supported() -> bool:
    """Whether the installed transformers' ``from_pretrained`` knows ``use_kernels`` (all
    releases repspace supports do; an older one would pass the unknown keyword on to the
    model's config)."""
    import inspect

    import transformers

    model = transformers.PreTrainedModel
    if (
        hasattr(model, "set_use_kernels")
        or "use_kernels" in inspect.signature(model.from_pretrained).parameters
    ):
        return True
    try:
        return "use_kernels" in inspect.getsource(model.from_pretrained)
    except (OSError, TypeError):
        return False


def no_hub_kernels() -> dict:
    """The ``from_pretrained`` keywords that turn Hub kernels off (``{"use_kernels": False}``),
    or ``{}`` where the installed transformers has no such option (and no Hub kernels)."""
    return {"use_kernels": False} if _supported() else {}
