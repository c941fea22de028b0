"""Models shipped with repspace: the embedded tiny BLIP captioner and its architecture.

::

    from repspace.models import load_embedded, embedded_path, EMBEDDED
    model, processor = load_embedded()          # offline, eval mode
    # "embedded" is the checkpoint spec string for it (e.g. `--base embedded`)

``tiny_blip_config`` / ``build_processor`` define the architecture and processor that
``repspace pretrain`` trains from random initialisation (``docs/embedded_model.md``).
"""

from repspace.models.captioning import evaluate_captions, generate_captions
from repspace.models.embedded import (
    EMBEDDED,
    MANIFEST,
    embedded_manifest,
    embedded_path,
    load_embedded,
)
from repspace.models.tiny_blip import (
    IMAGE_MEAN,
    IMAGE_STD,
    build_processor,
    pixel_values,
    tiny_blip_config,
)

__all__ = [
    "EMBEDDED",
    "MANIFEST",
    "embedded_path",
    "load_embedded",
    "embedded_manifest",
    "tiny_blip_config",
    "build_processor",
    "pixel_values",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "generate_captions",
    "evaluate_captions",
]
