"""Variants of the zoo's architectures that an independent run on other fixtures broke.

Each test pins one class of problem on the smallest model that shows it (the zoo's
tokenizers, other configurations):

- a composite model whose language model is an encoder-decoder (BLIP-2 on Flan-T5): the
  decoder's start token lives in the text config, and the image placeholders of the
  encoder's text are not the decoder's input;
- a tokenizer saved with ``padding_side="left"`` (chat models, for generation): a causal
  model's positions would shift by each row's padding, so a sample's states would depend
  on its batch;
- probe texts longer than a text encoder's positions (CLIP 77, SigLIP 64): ``--max-length``
  plus special tokens must not exceed them, and a text cut to N tokens must come out of
  the tokenizer again as at most N tokens.
"""

import pytest
import torch
import transformers

from tests.compat import checks, zoo


def blip2_t5():
    """BLIP-2 on a T5 language model (as Salesforce/blip2-flan-t5-xl): query tokens, then an
    encoder-decoder LM whose config, not BLIP-2's, names the decoder start token."""
    tok = zoo.t5_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    n_query = 3
    cfg = transformers.Blip2Config(
        vision_config=dict(zoo.VISION),
        qformer_config=dict(zoo.H, encoder_hidden_size=32, vocab_size=zoo.vocab_of(tok)),
        text_config=transformers.T5Config(
            vocab_size=zoo.vocab_of(tok),
            d_model=32,
            d_ff=64,
            d_kv=16,
            num_layers=2,
            num_heads=2,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        ),
        num_query_tokens=n_query,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    proc = transformers.Blip2Processor(zoo.blip_image_processor(), tok, num_query_tokens=n_query)
    return transformers.Blip2ForConditionalGeneration(cfg), proc


@pytest.fixture(scope="module")
def blip2_t5_paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    torch.manual_seed(0)
    model, proc = blip2_t5()
    base = root / "blip2_t5"
    model.eval().save_pretrained(base)
    proc.save_pretrained(base)
    return {
        "base": base,
        "lora": checks.save_lora(base, root / "blip2_t5-lora"),
        "full": checks.save_full(base, root / "blip2_t5-full"),
    }


def test_blip2_on_an_encoder_decoder_lm_compares(blip2_t5_paths):
    p = blip2_t5_paths
    result = checks.compare(
        p["base"], [p["base"], p["lora"], p["full"], p["full"] / "model.safetensors"]
    )
    assert any(
        layer.startswith("model.language_model.decoder") or ".decoder." in layer
        for layer in result.layers
    ), result.layers
    assert checks.verdicts(result) == dict.fromkeys(checks.CHECKS[1:]), checks.verdicts(result)


def test_decoder_only_lm_behind_a_qformer_gets_no_decoder_inputs(tmp_path):
    """BLIP-2 on OPT: its forward takes decoder_input_ids (for the Flan-T5 variant), but its
    language model is decoder-only, whose `decoder.layers` read the text stream."""
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches

    base = checks.build("blip2", tmp_path)["base"]
    batch = next(
        make_batches(
            load_probe("builtin", num_samples=4), checks.load(base), load_processor(str(base))
        )
    )
    assert "decoder_input_ids" not in batch and "decoder_attention_mask" not in batch


def test_decoder_reads_the_text_without_image_placeholders(blip2_t5_paths):
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches

    model = checks.load(blip2_t5_paths["base"])
    image = model.config.image_token_index
    batch = next(
        make_batches(
            load_probe("builtin", num_samples=4), model, load_processor(str(blip2_t5_paths["base"]))
        )
    )
    assert (batch["input_ids"] == image).sum(1).tolist() == [3] * 4  # the encoder's placeholders
    assert not (batch["decoder_input_ids"] == image).any()
    start = model.config.text_config.decoder_start_token_id
    assert (batch["decoder_input_ids"][:, 0] == start).all()
    for i in range(4):  # the decoder reads the encoder's text tokens, shifted right by one
        text = batch["input_ids"][i][
            (batch["input_ids"][i] != image) & (batch["attention_mask"][i] == 1)
        ]
        n = int(batch["decoder_attention_mask"][i].sum())
        assert n == len(text)  # start + the text but its last token (eos)
        assert torch.equal(batch["decoder_input_ids"][i, 1:n], text[: n - 1])
        assert not batch["decoder_attention_mask"][i, n:].any()


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("arch", ["t5", "gpt2", "llava"])
def test_states_do_not_depend_on_the_batch(arch, padding_side, tmp_path):
    """A sample's pooled states alone equal its states in a padded batch, whichever side
    the tokenizer was saved to pad on (T5's decoder once saw one more token when padded)."""
    from repspace.capture import capture
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches
    from repspace.probe.prompts import tokenizer_of

    base = checks.build(arch, tmp_path)["base"]
    proc = load_processor(str(base))
    tokenizer_of(proc).padding_side = padding_side
    model = checks.load(base)
    probe = load_probe("builtin", num_samples=6)

    def rows(p):
        batches = list(make_batches(p, model, proc, batch_size=6))
        return capture(model, batches, "blocks", pooling="mean", progress=False).tensors["base"]

    together, alone = rows(probe), rows(probe.select([0]))
    lengths = next(make_batches(probe, model, proc, batch_size=6))["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # sample 0 shares its batch with longer/shorter rows
    assert tokenizer_of(proc).padding_side == padding_side  # the loaded processor is untouched
    for layer, states in alone.items():
        torch.testing.assert_close(together[layer][:1], states, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def long_probe(tmp_path_factory):
    """Captions of 150+ tokens beside images."""
    import json

    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("long-probe")
    rng = np.random.default_rng(0)
    words = "the fishing boats stayed in port while violinists practised scales".split()
    records = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (20 + 4 * i, 30, 3), dtype=np.uint8)).save(
            folder / f"{i}.png"
        )
        text = " ".join(
            words[(i + j) % len(words)] + ("ing" if j % 7 == 3 else "") for j in range(90)
        )
        records.append({"image": f"{i}.png", "text": text})
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return folder


def clip_reloaded(tmp_path_factory=None):
    """CLIP's tokenizer as it loads from a saved folder: transformers' CLIP pipeline, whose
    BPE marks word ends (``</w>``), so a word cut after its first pieces re-tokenizes into
    other, sometimes more, pieces."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        zoo.clip_tokenizer().save_pretrained(tmp)
        return transformers.AutoTokenizer.from_pretrained(tmp)


@pytest.mark.parametrize(
    "tokenizer",
    [clip_reloaded, zoo.gpt2_tokenizer, zoo.llama_tokenizer, zoo.bert_tokenizer, zoo.t5_tokenizer],
)
def test_truncated_texts_retokenize_within_the_limit(tokenizer, long_probe):
    from repspace.probe import load_probe
    from repspace.probe.prompts import truncate_texts

    tok = tokenizer()
    texts = load_probe(long_probe).texts
    for limit in (2, 5, 17, 30, 63):
        for cut in truncate_texts(tok, texts, limit):
            n = len(tok(cut, add_special_tokens=False)["input_ids"])
            assert 0 < n <= limit, (limit, n, cut[-30:])


@pytest.mark.parametrize("declared_by", ["tokenizer", "config only"])
def test_text_encoder_positions_bound_the_probe_texts(declared_by, long_probe, tmp_path):
    """A CLIP whose text tower has 24 positions, probed with 150-token captions: every batch
    fits, and the report says the texts were cut below --max-length — whether its tokenizer
    declares the limit (model_max_length) or only the model's config does."""
    model, proc = zoo.clip()
    cfg = model.config
    cfg.text_config.max_position_embeddings = 24
    proc.tokenizer.model_max_length = 24 if declared_by == "tokenizer" else int(1e30)
    torch.manual_seed(0)
    base = tmp_path / "clip24"
    transformers.CLIPModel(cfg).eval().save_pretrained(base)
    proc.save_pretrained(base)
    lora = checks.save_lora(base, tmp_path / "clip24-lora")
    result = checks.compare(base, [lora], probe=str(long_probe))
    assert checks.verdict("lora", checks.ckas(result, 0)) is None
    assert any("cut to 22 tokens, below --max-length 64" in w for w in result.warnings), (
        result.warnings
    )
