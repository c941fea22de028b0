"""Data for repspace: the built-in *shapes world* and loaders for COCO / VQAv2-style data.

The shapes world is a deterministic, offline vision-language world (see ``docs/data.md``):
images of 1-3 coloured shapes on a 3x3 grid, generated from a scene graph that also yields
captions and unambiguous VQA pairs, in a ``"source"`` (pre-training) and a ``"shifted"``
domain::

    from repspace.data import ShapesWorld, make_probe_set, build_tokenizer
    world = ShapesWorld(seed=0, domain="source", image_size=32)
    ds = world.caption_dataset("train")          # items: image, caption, captions, id
    vqa = ShapesWorld(domain="shifted").vqa_dataset("val")
    probe = make_probe_set(256, seed=0)          # images, captions, texts
    tok = build_tokenizer()                      # word-level, BLIP special-token layout
"""

from repspace.data.coco import CocoCaptions
from repspace.data.domains import DOMAINS, DomainSpec, get_domain
from repspace.data.images import collate, load_image, to_float_tensor
from repspace.data.render import render_scene, shape_mask
from repspace.data.scene import Scene, SceneObject, sample_scene
from repspace.data.text import QA, QUESTION_TYPES, captions, questions, vocabulary, words
from repspace.data.tokenizer import SPECIAL_TOKENS, blip_token_ids, build_tokenizer, decoder_inputs
from repspace.data.vqa import COCO_FILE_PATTERN, VQADataset
from repspace.data.world import (
    SPLITS,
    ProbeSet,
    Sample,
    ShapesCaptionDataset,
    ShapesVQADataset,
    ShapesWorld,
    ShapesWorldConfig,
    caption_region,
    make_probe_set,
)

__all__ = [
    "CocoCaptions",
    "VQADataset",
    "COCO_FILE_PATTERN",
    "DOMAINS",
    "DomainSpec",
    "get_domain",
    "collate",
    "load_image",
    "to_float_tensor",
    "render_scene",
    "shape_mask",
    "Scene",
    "SceneObject",
    "sample_scene",
    "QA",
    "QUESTION_TYPES",
    "captions",
    "questions",
    "vocabulary",
    "words",
    "SPECIAL_TOKENS",
    "blip_token_ids",
    "build_tokenizer",
    "decoder_inputs",
    "SPLITS",
    "ProbeSet",
    "Sample",
    "ShapesCaptionDataset",
    "ShapesVQADataset",
    "ShapesWorld",
    "ShapesWorldConfig",
    "caption_region",
    "make_probe_set",
]
