"""Two LMM variants the compat zoo (tests/compat/zoo.py) does not hold, built from its
tokenizers and configs: BLIP-2 with a T5 language model (the FLAN-T5 checkpoints) and
InstructBLIP (instruction to the Q-Former too) with a Llama (Vicuna) language model."""

import warnings

import torch
import transformers

from tests.compat import zoo


def blip2_t5():
    tok = zoo.t5_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    n_query = 4
    text = transformers.T5Config(
        vocab_size=zoo.vocab_of(tok),
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_heads=2,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    cfg = transformers.Blip2Config(
        vision_config=dict(zoo.VISION),
        qformer_config=dict(zoo.H, encoder_hidden_size=32, vocab_size=64),
        text_config=text,
        num_query_tokens=n_query,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    proc = transformers.Blip2Processor(zoo.blip_image_processor(), tok, num_query_tokens=n_query)
    return transformers.Blip2ForConditionalGeneration(cfg), proc


def instructblip():
    tok = zoo.llama_tokenizer(("<image>",), pad="<pad>")
    n_query = 4
    qtok = zoo.bert_tokenizer()
    cfg = transformers.InstructBlipConfig(
        vision_config=dict(zoo.VISION),
        qformer_config=dict(
            zoo.H,
            encoder_hidden_size=32,
            vocab_size=zoo.vocab_of(qtok),
            pad_token_id=qtok.pad_token_id,
        ),
        text_config=zoo._llama_text(tok),
        num_query_tokens=n_query,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    proc = transformers.InstructBlipProcessor(
        zoo.blip_image_processor(), tok, qtok, num_query_tokens=n_query
    )
    return transformers.InstructBlipForConditionalGeneration(cfg), proc


BUILDERS = {"blip2_t5": blip2_t5, "instructblip": instructblip}


def saved_folders(tmp_path_factory, prefix: str):
    """``get(name) -> folder`` of a zoo (tests/compat/zoo.py) or variant checkpoint saved with
    ``save_pretrained`` as a user has it, built once per fixture scope (fixed seeds)."""
    cache: dict = {}

    def get(name: str) -> str:
        if name not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                folder = tmp_path_factory.mktemp(f"{prefix}-{name}")
                if name in BUILDERS:
                    torch.manual_seed(0)
                    model, processor = BUILDERS[name]()
                    model.save_pretrained(folder)
                    processor.save_pretrained(folder)
                else:
                    zoo.save(name, folder)
                cache[name] = str(folder)
        return cache[name]

    return get
