"""Issue 31: the probe and training build inputs with one builder, and the probe's batches are
checked as training's are (contiguous, dtypes, shapes, ids in the vocabulary, image tokens
with images)."""

import numpy as np
import pytest
import torch

from repspace.probe import make_batches
from repspace.probe.batch_check import finish_batch
from repspace.probe.layout import IGNORE, answer_rows, pad_rows
from repspace.probe.prompts import chat_template_of, image_prompts, prompt_mode
from repspace.probe.sources import ProbeSet

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def test_rows_and_labels_learn_only_the_answer():
    assert answer_rows([5, 6], [7, 8], seq2seq=False) == ([5, 6, 7, 8], [IGNORE, IGNORE, 7, 8])
    assert answer_rows([5, 6], [7, 8], seq2seq=True) == ([5, 6], [7, 8])
    padded = pad_rows([[1, 2, 3], [4]], 0)
    assert padded.tolist() == [[1, 2, 3], [4, 0, 0]] and padded.dtype == torch.long
    trimmed = padded[:, :2]
    assert (
        not trimmed.is_contiguous() and finish_batch({"labels": trimmed})["labels"].is_contiguous()
    )
    with pytest.raises(ValueError, match="non-empty answer"):
        answer_rows([1], [], seq2seq=False)


def test_a_template_only_in_the_tokenizer_config_is_used_by_probe_and_training(tmp_path):
    from repspace.checkpoints import load_checkpoint
    from tests.training.independent_zoo import save_case

    ck = load_checkpoint(str(save_case("qwen2_vl_tokenizer_template", tmp_path / "qwen")))
    assert chat_template_of(ck.processor)
    image = np.zeros((18, 18, 3), dtype=np.uint8)
    from repspace.capture.tokens import image_token_id

    assert prompt_mode(ck.processor, image_token_id(ck.model), "a red circle", image) == "chat"
    probe = image_prompts(ck.processor, ["a red circle"], "chat")[0]
    train = image_prompts(ck.processor, ["a red circle"], "chat", generation=True)[0]
    assert train.startswith(probe) and train != probe  # the same turn, then the generation prompt
    batch = next(
        iter(make_batches(ProbeSet("t", ["a red circle"], [image]), ck.model, ck.processor))
    )
    assert all(v.is_contiguous() for v in batch.values() if torch.is_tensor(v))
    assert int((batch["input_ids"] == image_token_id(ck.model)).sum()) > 0


def test_probe_ids_beyond_the_models_embeddings_are_refused_naming_both(tmp_path):
    from tests.training.independent_zoo import gpt2

    model, tok = gpt2()
    tok.add_tokens(["zzyzx"])
    model.resize_token_embeddings(len(tok) - 1)  # the new token has no embedding row
    with pytest.raises(ValueError, match="tokenizer gives token id") as exc:
        next(iter(make_batches(ProbeSet("t", ["zzyzx a red circle"]), model, tok)))
    assert "\n" not in str(exc.value)
