"""Variants of the zoo's architectures that an independent run on other fixtures broke.

Each test pins one class of problem on the smallest model that shows it (the zoo's
tokenizers, other configurations):

- a composite model whose language model is an encoder-decoder (BLIP-2 on Flan-T5): the
  decoder's start token lives in the text config, and the image placeholders of the
  encoder's text are not the decoder's input;
- a tokenizer saved with ``padding_side="left"`` (chat models, for generation): a causal
  model's positions would shift by each row's padding, so a sample's states would depend
  on its batch.
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
        text_config=transformers.T5Config(vocab_size=zoo.vocab_of(tok), d_model=32, d_ff=64, d_kv=16,
                                          num_layers=2, num_heads=2, pad_token_id=tok.pad_token_id,
                                          eos_token_id=tok.eos_token_id,
                                          decoder_start_token_id=tok.pad_token_id),
        num_query_tokens=n_query, image_token_index=tok.convert_tokens_to_ids("<image>"))
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
    return {"base": base, "lora": checks.save_lora(base, root / "blip2_t5-lora"),
            "full": checks.save_full(base, root / "blip2_t5-full")}


def test_blip2_on_an_encoder_decoder_lm_compares(blip2_t5_paths):
    p = blip2_t5_paths
    result = checks.compare(p["base"], [p["base"], p["lora"], p["full"], p["full"] / "model.safetensors"])
    assert any(layer.startswith("model.language_model.decoder") or ".decoder." in layer
               for layer in result.layers), result.layers
    assert checks.verdicts(result) == dict.fromkeys(checks.CHECKS[1:]), checks.verdicts(result)


def test_decoder_reads_the_text_without_image_placeholders(blip2_t5_paths):
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches

    model = checks.load(blip2_t5_paths["base"])
    image = model.config.image_token_index
    batch = next(make_batches(load_probe("builtin", num_samples=4), model,
                              load_processor(str(blip2_t5_paths["base"]))))
    assert (batch["input_ids"] == image).sum(1).tolist() == [3] * 4  # the encoder's placeholders
    assert not (batch["decoder_input_ids"] == image).any()
    start = model.config.text_config.decoder_start_token_id
    assert (batch["decoder_input_ids"][:, 0] == start).all()
    for i in range(4):  # the decoder reads the encoder's text tokens, shifted right by one
        text = batch["input_ids"][i][(batch["input_ids"][i] != image) & (batch["attention_mask"][i] == 1)]
        n = int(batch["decoder_attention_mask"][i].sum())
        assert n == len(text)  # start + the text but its last token (eos)
        assert torch.equal(batch["decoder_input_ids"][i, 1:n], text[:n - 1])
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
