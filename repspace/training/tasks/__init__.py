"""Task glue per architecture: :func:`make_task` picks it from the model class.

=================================  ===============================  ======================
model class                        captioning                       VQA
=================================  ===============================  ======================
BlipForConditionalGeneration       ``[DEC] caption [SEP]``          generative, question as prompt
BlipForQuestionAnswering           (error)                          encoder question, decoder answer
LlavaForConditionalGeneration      image tokens + caption           image tokens + question + answer
text-only causal LM (GPT-2, ...)   (error: needs an image model)    caption + question + answer
*ForSequenceClassification (BERT)  (error: needs an image model)    classify over the answer set
=================================  ===============================  ======================
"""
from __future__ import annotations

from torch import nn

from repspace.training.tasks.base import Encoded, Task
from repspace.training.tasks.scoring import score

__all__ = ["make_task", "Task", "Encoded", "score"]


def make_task(model: nn.Module, processor, task: str) -> Task:
    """The :class:`Task` glue of ``model`` (unwrapped from PEFT) for ``task``."""
    from repspace.capture.names import unwrap_model
    from repspace.training.tasks.blip import BlipGenerativeTask, BlipQuestionAnsweringTask
    from repspace.training.tasks.causal import CausalLMTask
    from repspace.training.tasks.seqcls import SequenceClassificationTask

    root = unwrap_model(model)
    name = type(root).__name__
    if name == "BlipForConditionalGeneration":
        return BlipGenerativeTask(root, processor, task)
    if name == "BlipForQuestionAnswering":
        return BlipQuestionAnsweringTask(root, processor, task)
    if name == "LlavaForConditionalGeneration":
        return CausalLMTask(root, processor, task, image=True)
    if name.endswith("ForSequenceClassification"):
        return SequenceClassificationTask(root, processor, task)
    has_vision = getattr(root.config, "vision_config", None) is not None
    if not has_vision and (name.endswith("ForCausalLM") or name.endswith("LMHeadModel")):
        return CausalLMTask(root, processor, task, image=False)
    raise ValueError(f"{name}: repspace has no training recipe for this model class; supported: "
                     "BlipForConditionalGeneration, BlipForQuestionAnswering, LlavaForConditionalGeneration, "
                     "text-only causal LMs, *ForSequenceClassification")
