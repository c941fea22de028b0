"""Task glue per architecture: :func:`make_task` picks it from the model class.

=================================  ===============================  ======================
model class                        captioning                       VQA
=================================  ===============================  ======================
BlipForConditionalGeneration       ``[DEC] caption [SEP]``          generative, question as prompt
BlipForQuestionAnswering           (error)                          encoder question, decoder answer
LlavaForConditionalGeneration      image tokens + caption           image tokens + question + answer
text-only causal LM (GPT-2, ...)   (error: needs an image model)    caption + question + answer
*ForSequenceClassification (BERT)  (error: needs an image model)    classify over the answer set
BERT/RoBERTa *ForMaskedLM, bare    (error: needs an image model)    new head on [CLS], classify
T5ForConditionalGeneration         (error: needs an image model)    question + context -> answer
BLIP-2, InstructBLIP, PaliGemma,   processor's image prompt         processor's image prompt +
LLaVA-NeXT, Idefics3, SmolVLM      (or chat template) + caption     question + answer
=================================  ===============================  ======================

``classify`` (sentence classification, :mod:`repspace.data.sentences`) runs on the text
models that classify or write a label: ``*ForSequenceClassification``, BERT/RoBERTa
masked-LM or bare encoders (a new head on ``[CLS]``), text-only causal LMs (GPT-2, Llama,
Mistral, Qwen2, Gemma2, Phi-3: a new head on the last non-pad token,
:class:`~repspace.training.tasks.causal.CausalClassificationTask`) and T5-style text-to-text
(the label as text).  Image-text models are refused in one line.
"""

from __future__ import annotations

from torch import nn

from repspace.training.tasks.base import Encoded, Task
from repspace.training.tasks.scoring import score

__all__ = ["make_task", "Task", "Encoded", "score", "ENCODER_TYPES", "IMAGE_TEXT_TYPES"]

# Masked-LM / bare text encoders that get a fresh classification head (encoder_head.py).
ENCODER_TYPES = ("bert", "roberta")
# LMMs whose processor builds image prompts (vlm.py).
IMAGE_TEXT_TYPES = (
    "blip-2",
    "instructblip",
    "paligemma",
    "llava_next",
    "idefics3",
    "smolvlm",
    "qwen2_vl",
)


def make_task(model: nn.Module, processor, task: str) -> Task:
    """The :class:`Task` glue of ``model`` (unwrapped from PEFT) for ``task``."""
    from repspace.layer_table import unwrap_model
    from repspace.training.tasks.blip import BlipGenerativeTask, BlipQuestionAnsweringTask
    from repspace.training.tasks.causal import CausalLMTask
    from repspace.training.tasks.encoder_head import EncoderClassificationTask
    from repspace.training.tasks.seqcls import SequenceClassificationTask
    from repspace.training.tasks.text2text import TextToTextTask
    from repspace.training.tasks.vlm import ImageTextToTextTask

    root = unwrap_model(model)
    name = type(root).__name__
    if task == "classify":
        return _classify_task(root, processor)
    if name == "BlipForConditionalGeneration":
        return BlipGenerativeTask(root, processor, task)
    if name == "BlipForQuestionAnswering":
        return BlipQuestionAnsweringTask(root, processor, task)
    if name == "LlavaForConditionalGeneration":
        return CausalLMTask(root, processor, task, image=True)
    if name.endswith("ForSequenceClassification"):
        return SequenceClassificationTask(root, processor, task)
    model_type = getattr(root.config, "model_type", None)
    has_vision = getattr(root.config, "vision_config", None) is not None
    if not has_vision and (name.endswith("ForCausalLM") or name.endswith("LMHeadModel")):
        return CausalLMTask(root, processor, task, image=False)
    if model_type in ENCODER_TYPES and (name.endswith("ForMaskedLM") or name.endswith("Model")):
        return EncoderClassificationTask(root, processor, task)
    if (
        not has_vision
        and getattr(root.config, "is_encoder_decoder", False)
        and name.endswith("ForConditionalGeneration")
    ):
        return TextToTextTask(root, processor, task)
    if model_type == "qwen2_vl" and getattr(processor, "image_processor", None) is None:
        raise ValueError(
            f"{name}: training needs the Qwen2-VL processor, which transformers builds only "
            "with torchvision installed (pip install torchvision); none loaded"
        )
    if has_vision and name.endswith("ForConditionalGeneration") and model_type in IMAGE_TEXT_TYPES:
        return ImageTextToTextTask(root, processor, task)
    raise ValueError(
        f"{name}: repspace has no training recipe for this model class; supported: "
        "BlipForConditionalGeneration, BlipForQuestionAnswering, LlavaForConditionalGeneration, "
        f"{', '.join(IMAGE_TEXT_TYPES)} (*ForConditionalGeneration), text-only causal LMs, "
        "T5-style text-to-text, *ForSequenceClassification, BERT/RoBERTa *ForMaskedLM or bare encoders"
    )


def _classify_task(root: nn.Module, processor) -> Task:
    """Sentence classification: a head on a text encoder or a causal LM, or the label as text for T5."""
    from repspace.training.tasks.causal import CausalClassificationTask
    from repspace.training.tasks.encoder_head import EncoderClassificationTask
    from repspace.training.tasks.seqcls import SequenceClassificationTask
    from repspace.training.tasks.text2text import TextToTextTask

    name = type(root).__name__
    cfg = root.config
    if name.endswith("ForSequenceClassification"):
        return SequenceClassificationTask(root, processor, "classify")
    if getattr(cfg, "model_type", None) in ENCODER_TYPES and (
        name.endswith("ForMaskedLM") or name.endswith("Model")
    ):
        return EncoderClassificationTask(root, processor, "classify")
    text_only = getattr(cfg, "vision_config", None) is None
    if text_only and (name.endswith("ForCausalLM") or name.endswith("LMHeadModel")):
        return CausalClassificationTask(root, processor, "classify")
    if (
        text_only
        and getattr(cfg, "is_encoder_decoder", False)
        and name.endswith("ForConditionalGeneration")
    ):
        return TextToTextTask(root, processor, "classify")
    raise ValueError(
        f"{name}: task classify (sentence classification) needs a text encoder (BERT/RoBERTa "
        "*ForMaskedLM, a bare encoder or *ForSequenceClassification), a text-only causal LM "
        "(*ForCausalLM, GPT-2) or a T5-style text-to-text model; use --task vqa or captioning "
        "for this model"
    )
