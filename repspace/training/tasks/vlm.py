"""Image-text-to-text glue for LMMs whose processor builds the prompt: BLIP-2 / InstructBLIP,
PaliGemma, LLaVA-NeXT, Idefics3 / SmolVLM, Qwen2-VL (and any decoder-only
``*ForConditionalGeneration`` with such a processor).

The prompt is what each model's processor expects, built by the processor itself (so image
tokens are expanded exactly as at inference -- LLaVA-NeXT's anyres grid, Idefics3's image
splitting, BLIP-2's query tokens, PaliGemma's image prefix + ``bos``):

* how the image gets into the prompt is decided as the probe decides it
  (:func:`repspace.probe.prompts.prompt_mode`, on the first record): the chat template when
  one renders image placeholders (the processor's, else the tokenizer's), else the plain
  text when the processor inserts the placeholders itself (PaliGemma, BLIP-2), else the
  processor's ``image_token`` before the text (LLaVA-NeXT, Idefics3, Qwen2-VL saved without
  a chat template) -- so whatever ``compare`` can feed a model, training can too;
* chat: one user turn ``[image, text]``, generation prompt on;
* PaliGemma: ``caption en`` / ``answer en <question>`` (its task-prefix convention);
* otherwise: ``""`` / ``Question: <question> Answer:`` (the BLIP-2 paper's VQA prompt),
  after the image token where the processor needs one.

The text is the question for VQA and ``Describe the image.`` for captioning (chat models).
The sequence is ``prompt + answer [eos]`` with labels ``-100`` on the prompt and padding, so
only the answer is learned.  PaliGemma's ``token_type_ids`` mark the answer as suffix (1),
which gives its prefix-LM mask.  BLIP-2 / InstructBLIP with a T5 language model are
encoder-decoder: the prompt goes to the encoder, ``answer [eos]`` is the decoder's labels.

Image tensors (``pixel_values`` and what goes with them: ``image_sizes``,
``pixel_attention_mask``, ``qformer_*``) are computed once per distinct image and stacked
per batch.  Generation batches prompts of equal length, so no padding enters a prompt.
"""

from __future__ import annotations

from typing import Sequence

import torch

from repspace.probe.layout import answer_rows
from repspace.training.tasks.base import Encoded, Task, generate_by_length, pad

__all__ = ["ImageTextToTextTask"]

# per-token tensors (the rest of a processor's output is per image); Qwen2-VL's
# mm_token_type_ids marks image tokens for its multimodal RoPE positions
_TEXT_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids", "labels")
CAPTION_INSTRUCTION = "Describe the image."
# BLIP-2 / InstructBLIP hand inputs_embeds to the LM's generate(), which then keeps a KV cache
# even with use_cache=False; prompt tuning (which cannot extend a cache) decodes by hand there.
_CACHE_FORCED = ("blip-2", "instructblip")


class _ImageBatch(Encoded):
    """:class:`Encoded` whose image tensors live per distinct image (``images[k]``: name ->
    ``(1, ...)`` tensor) and are concatenated per batch (``image_of[record]`` = ``k``)."""

    images: list[dict[str, torch.Tensor]] | None = None
    image_of: torch.Tensor | None = None

    def image_inputs(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = [self.images[int(k)] for k in self.image_of[idx]]
        return {name: torch.cat([r[name] for r in rows]) for name in rows[0]}

    def batch(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().batch(idx)
        out.update(self.image_inputs(idx))
        return out


class ImageTextToTextTask(Task):
    def __init__(self, model, processor, task: str) -> None:
        super().__init__(model, processor, task)
        name = type(model).__name__
        if getattr(processor, "image_processor", None) is None or not callable(processor):
            raise ValueError(
                f"{name}: the checkpoint's processor has no image processor; save the "
                "model's own processor (e.g. AutoProcessor.save_pretrained) next to it"
            )
        cfg = model.config
        self.model_type = cfg.model_type
        self.kind = f"{self.model_type}-image-text-to-text"
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        self.seq2seq = bool(getattr(text_cfg, "is_encoder_decoder", False))
        tok = self.tokenizer
        self.eos = tok.eos_token_id
        if self.eos is None:
            raise ValueError(f"{name}: its tokenizer has no eos token to end answers with")
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos
        from repspace.capture.tokens import image_token_id

        self.image_token = image_token_id(model)
        self.mode: str | None = None  # "chat" / "plain" / "token", decided on the first record

    # -- prompts ------------------------------------------------------------------------------
    def prompt_text(self, r: dict) -> str:
        from repspace.probe.prompts import image_prompts, prompt_mode

        question = r["question"] if self.task == "vqa" else None
        chat_text = question if question is not None else CAPTION_INSTRUCTION
        if self.mode is None:  # the probe's rule, tried on this record's text and image
            self.mode = prompt_mode(self.processor, self.image_token, chat_text, r["image"])
        if self.mode == "chat":
            return image_prompts(self.processor, [chat_text], "chat", generation=True)[0]
        if self.model_type == "paligemma":
            image = getattr(self.processor, "image_token", "<image>")
            return image + ("caption en" if question is None else f"answer en {question}")
        text = "" if question is None else f"Question: {question} Answer:"
        return image_prompts(self.processor, [text], self.mode)[0]

    def _process(self, r: dict) -> dict[str, torch.Tensor]:
        out = self.processor(text=[self.prompt_text(r)], images=[r["image"]], return_tensors="pt")
        return {k: v for k, v in out.items() if torch.is_tensor(v)}

    def target(self, r: dict) -> list[int]:
        text = r["caption"] if self.task == "captioning" else r["answer"]
        return self.text_ids(
            text, lead_space=not self.seq2seq and self.model_type != "paligemma"
        ) + [self.eos]

    # -- data ---------------------------------------------------------------------------------
    def encode(self, records: Sequence[dict], train: bool) -> Encoded:
        images: list[dict[str, torch.Tensor]] = []
        seen: dict[int, int] = {}
        image_of, prompts, rows, labels, types, mm_types = [], [], [], [], [], []
        qformer: dict[str, list[list[int]]] = {}
        for r in records:
            if r.get("image") is None:
                raise ValueError("an image task got a record without an image")
            out = self._process(r)
            key = id(r["image"])
            if key not in seen:
                seen[key] = len(images)
                images.append(
                    {
                        k: v
                        for k, v in out.items()
                        if k not in _TEXT_KEYS and not k.startswith("qformer_")
                    }
                )
            image_of.append(seen[key])
            for k in out:  # InstructBLIP: the instruction also goes to the Q-Former, per record
                if k.startswith("qformer_"):
                    qformer.setdefault(k, []).append(out[k][0].tolist())
            prompt = out["input_ids"][0].tolist()
            target = self.target(r)
            prompts.append(prompt)
            row, label = answer_rows(prompt, target, self.seq2seq)
            rows.append(row)
            labels.append(label)
            if not self.seq2seq:
                if "token_type_ids" in out:  # PaliGemma: prefix 0, suffix (the answer) 1
                    types.append(out["token_type_ids"][0].tolist() + [1] * len(target))
                if "mm_token_type_ids" in out:  # Qwen2-VL: the answer is text (0)
                    mm_types.append(out["mm_token_type_ids"][0].tolist() + [0] * len(target))
        t = {
            "input_ids": pad(rows, self.pad_id),
            "attention_mask": pad([[1] * len(x) for x in rows], 0),
        }
        trim = {"input_ids": "attention_mask", "attention_mask": "attention_mask"}
        if types:
            t["token_type_ids"] = pad(types, 0)
            trim["token_type_ids"] = "attention_mask"
        if mm_types:
            t["mm_token_type_ids"] = pad(mm_types, 0)
            trim["mm_token_type_ids"] = "attention_mask"
        for k, v in qformer.items():
            t[k] = pad(v, self.pad_id if k == "qformer_input_ids" else 0)
            trim[k] = "qformer_attention_mask"
        if self.seq2seq:
            t["labels"] = pad(labels, -100)
            t["label_mask"] = pad([[1] * len(x) for x in labels], 0)
            trim.update(labels="label_mask", label_mask="label_mask")
        else:
            t["labels"] = pad(labels, -100)
            trim["labels"] = "attention_mask"
        enc = _ImageBatch(len(records), t, trim, prompts)
        enc.images, enc.image_of = images, torch.tensor(image_of, dtype=torch.long)
        return enc

    def predict(
        self, model, enc: Encoded, batch_size: int, max_new_tokens: int, gen_kwargs: dict
    ) -> list[str]:
        dev = next(model.parameters()).device

        def run(ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            kw = {k: v.to(dev) for k, v in enc.image_inputs(rows).items()}
            if "token_type_ids" in enc.tensors:
                kw["token_type_ids"] = torch.zeros_like(ids).to(dev)
            if "mm_token_type_ids" in enc.tensors:  # the prompt is each row's prefix
                kw["mm_token_type_ids"] = enc.tensors["mm_token_type_ids"][rows, : ids.shape[1]].to(
                    dev
                )
            if "qformer_input_ids" in enc.tensors:
                b = enc.batch(rows)
                kw.update(
                    {k: b[k].to(dev) for k in ("qformer_input_ids", "qformer_attention_mask")}
                )
            self.check(model, {"input_ids": ids, **kw}, "generation input")
            if (
                gen_kwargs.get("use_cache") is False
                and self.model_type in _CACHE_FORCED
                and not self.seq2seq
            ):
                return self._greedy_uncached(model, ids.to(dev), kw, max_new_tokens).cpu()
            out = self.generate_greedy(model, ids, kw, max_new_tokens, gen_kwargs)
            # decoder-only: prompt + new tokens; encoder-decoder: decoder start + new tokens
            return (out[:, 1:] if self.seq2seq else out[:, ids.shape[1] :]).cpu()

        new = generate_by_length(enc.prompts, batch_size, run)
        return [self.decode(t, self.eos) for t in new]

    def _greedy_uncached(
        self, model, ids: torch.Tensor, kw: dict, max_new_tokens: int
    ) -> torch.Tensor:
        """Greedy decoding re-running the whole sequence each step (no KV cache): what
        ``generate(use_cache=False)`` would do, for models whose ``generate`` forces a cache."""
        new = []
        for _ in range(max_new_tokens):
            logits = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **kw
            ).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
            new.append(token)
            ids = torch.cat([ids, token], 1)
            if bool((torch.cat(new, 1) == self.eos).any(1).all()):
                break
        return torch.cat(new, 1)
