"""Processors of video-capable VLMs without their video half (no torchvision needed).

Processors of video-capable VLMs (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4V, LLaVA-OneVision, …)
hold a video processor that needs torchvision, so AutoProcessor fails without it even though
a probe has no videos.  Their image and text halves load on their own (the image processor's
PIL path, the tokenizer); :class:`ImageOnlyProcessor` puts them back together.  Part of
loading a checkpoint (:func:`repspace.checkpoints.loader.load_processor` falls back to it).
"""

from __future__ import annotations

__all__ = ["ImageOnlyProcessor", "image_only_processor"]


class ImageOnlyProcessor:
    """The image + text half of a multimodal processor whose video half cannot load.

    Reproduces what transformers' generic ``ProcessorMixin.__call__`` does for images and
    text: the image processor's output, each image's placeholder (``image_token``, in the
    prompt once per image, in prompt order) replaced by the processor class's own
    ``replace_image_token`` rule (Qwen2-VL: ``image_token`` × ``image_grid_thw[i].prod() //
    merge_size²``), the expanded text tokenized, and ``mm_token_type_ids`` (1 for image
    tokens, 2 for video tokens) when the class returns them.  The rule is transformers' own
    method, called on this object (its helpers too, see ``__getattr__``), so the token counts
    cannot drift from the installed version; ``tests/probe/test_image_only_processor.py``
    checks whole outputs against the real processor class.
    """

    def __init__(
        self,
        processor_class: type,
        tokenizer,
        image_processor,
        image_token: str,
        chat_template: str | None = None,
        **attributes,
    ):
        self.processor_class = processor_class
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token = image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        video = getattr(tokenizer, "video_token", None) or attributes.pop("video_token", None)
        self.video_token_id = None if video is None else tokenizer.convert_tokens_to_ids(video)
        self.chat_template = chat_template
        for key, value in attributes.items():  # the processor's init kwargs (patch_size, …)
            setattr(self, key, value)

    def __getattr__(self, name: str):
        # Only reached for names the instance lacks: the processor class's helper methods
        # (those its replace_image_token calls), bound to this object.
        if name.startswith("__") or name == "processor_class":
            raise AttributeError(name)
        member = getattr(self.processor_class, name, None)
        if callable(member) and not isinstance(member, type):
            return member.__get__(self)
        raise AttributeError(
            f"{type(self).__name__} ({self.processor_class.__name__}) has no {name!r}"
        )

    def __repr__(self) -> str:
        return (
            f"ImageOnlyProcessor({self.processor_class.__name__}: "
            f"{type(self.tokenizer).__name__} + {type(self.image_processor).__name__})"
        )

    def apply_chat_template(
        self, conversation, tokenize: bool = False, add_generation_prompt: bool = False, **kwargs
    ):
        """The processor's chat template rendered with its tokenizer (text only)."""
        return self.tokenizer.apply_chat_template(
            conversation,
            chat_template=self.chat_template,
            tokenize=tokenize,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )

    def _expand(self, texts: list[str], replacements: list[str]) -> list[str]:
        """Each ``image_token`` replaced, in prompt order across the batch, by its image's
        replacement (``ProcessorMixin.get_text_with_replacements`` for images)."""
        found = sum(t.count(self.image_token) for t in texts)
        if found != len(replacements):
            raise ValueError(
                f"{self.processor_class.__name__}: found {found} {self.image_token} "
                f"tokens in the prompts for {len(replacements)} images"
            )
        it = iter(replacements)
        return [
            "".join(
                part if i == 0 else next(it) + part
                for i, part in enumerate(t.split(self.image_token))
            )
            for t in texts
        ]

    def __call__(self, text=None, images=None, return_tensors=None, **text_kwargs):
        from transformers.feature_extraction_utils import BatchFeature
        from transformers.image_utils import make_flat_list_of_images

        if images is None:
            return self.tokenizer(text, return_tensors=return_tensors, **text_kwargs)
        processed = self.image_processor(images, return_tensors=return_tensors)
        if text is None:
            return processed
        texts = [text] if isinstance(text, str) else list(text)
        n_images = len(make_flat_list_of_images(images))
        try:
            replacements = [
                self.processor_class.replace_image_token(self, processed, image_idx=i)
                for i in range(n_images)
            ]
        except (AttributeError, KeyError, NotImplementedError, TypeError) as exc:
            raise ValueError(
                f"{self.processor_class.__name__}: its image token rule cannot run "
                f"without the full processor ({type(exc).__name__}: {exc}); install "
                "what its processor needs (torchvision)"
            ) from None
        enc = self.tokenizer(
            self._expand(texts, replacements), return_tensors=return_tensors, **text_kwargs
        )
        data = dict(enc)
        if getattr(self.processor_class, "return_mm_token_type_ids", False):
            import numpy as np

            rows = []
            for row in enc["input_ids"]:
                row = np.asarray(row.tolist() if hasattr(row, "tolist") else row)
                types = np.zeros_like(row)
                types[row == self.image_token_id] = 1
                if self.video_token_id is not None:
                    types[row == self.video_token_id] = 2
                rows.append(types.tolist())
            data["mm_token_type_ids"] = rows
        data.update(processed)
        return BatchFeature(data, tensor_type=return_tensors)


def _json_file(spec: str, name: str, local: bool) -> dict | str | None:
    """A file of checkpoint ``spec`` (a local folder or a hub id): parsed JSON, raw text for
    ``.jinja``, or None when it is absent or unreadable."""
    import json

    from transformers.utils import cached_file

    try:
        path = cached_file(
            spec,
            name,
            local_files_only=local,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if path is None:
            return None
        with open(path, encoding="utf-8") as f:
            return f.read() if name.endswith(".jinja") else json.load(f)
    except (OSError, ValueError, RecursionError):
        return None


def _processor_class(spec: str, local: bool):
    """The processor class a checkpoint names (its processor / preprocessor / tokenizer config),
    else its model type's (as AutoProcessor resolves it); None when unknown."""
    import transformers

    name = None
    for fname in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        cfg = _json_file(spec, fname, local)
        if isinstance(cfg, dict) and isinstance(cfg.get("processor_class"), str):
            name = cfg["processor_class"]
            break
    if name is None:
        from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

        cfg = _json_file(spec, "config.json", local)
        name = PROCESSOR_MAPPING_NAMES.get(cfg.get("model_type")) if isinstance(cfg, dict) else None
    return getattr(transformers, name, None) if isinstance(name, str) else None


def _model_token(spec: str, local: bool, kind: str) -> int | None:
    """The model config's ``<kind>_token_id`` (or ``<kind>_token_index``), or None."""
    cfg = _json_file(spec, "config.json", local)
    if not isinstance(cfg, dict):
        return None
    for key in (f"{kind}_token_id", f"{kind}_token_index"):
        if isinstance(cfg.get(key), int):
            return cfg[key]
    return None


def image_only_processor(spec: str, tokenizer, failure: str):
    """An :class:`ImageOnlyProcessor` for checkpoint ``spec`` whose AutoProcessor failed
    (``failure``) and whose ``tokenizer`` loaded, or None when that does not apply: the
    processor class has no video half, does not use transformers' generic ``__call__`` (so
    its image/text behaviour is its own code, not reproduced here), or the image processor
    does not load either."""
    from pathlib import Path

    import transformers
    from transformers.processing_utils import ProcessorMixin

    local = Path(spec).is_dir()
    cls = _processor_class(spec, local)
    if (
        cls is None
        or not isinstance(cls, type)
        or not issubclass(cls, ProcessorMixin)
        or "video_processor" not in cls.get_attributes()
        or cls.__call__ is not ProcessorMixin.__call__
        or cls.replace_image_token is ProcessorMixin.replace_image_token
    ):
        return None
    try:
        image_processor = transformers.AutoImageProcessor.from_pretrained(
            spec, local_files_only=local, trust_remote_code=False
        )
    except Exception:  # noqa: BLE001 - the original AutoProcessor failure is what gets reported
        return None
    config = _json_file(spec, "processor_config.json", local)
    config = config if isinstance(config, dict) else {}
    # The processor's own init kwargs (patch_size, num_image_tokens, …); not its sub-processors.
    attributes = {
        k: v
        for k, v in config.items()
        if k not in ("processor_class", "chat_template", *cls.get_attributes())
        and not isinstance(v, dict)
    }
    # The placeholder the processor expands: the tokenizer's, the processor config's, else
    # the token of the model's image_token_id (what the expansion must produce in the end).
    tokens = {}
    for kind in ("image", "video"):
        token = getattr(tokenizer, f"{kind}_token", None) or attributes.pop(f"{kind}_token", None)
        if token is None and (token_id := _model_token(spec, local, kind)) is not None:
            token = tokenizer.convert_ids_to_tokens(token_id)
        attributes.pop(f"{kind}_token", None)
        tokens[kind] = token
    image_token = tokens["image"]
    if not isinstance(image_token, str) or tokenizer.convert_tokens_to_ids(image_token) in (
        None,
        tokenizer.unk_token_id,
    ):
        return None
    if isinstance(tokens["video"], str):
        attributes["video_token"] = tokens["video"]
    template = _json_file(spec, "chat_template.json", local)
    template = (
        template.get("chat_template")
        if isinstance(template, dict)
        else _json_file(spec, "chat_template.jinja", local)
    ) or tokenizer.chat_template
    return ImageOnlyProcessor(cls, tokenizer, image_processor, image_token, template, **attributes)
