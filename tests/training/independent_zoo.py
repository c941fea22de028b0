"""A second generator of tiny checkpoints for training, written apart from tests/compat/zoo.py
(issue 31): the compatibility table must stand for the class of checkpoints, not for one zoo.

Every architecture of the compatibility table, saved with ``save_pretrained`` beside the real
tokenizer / processor classes, with the choices the first zoo happens not to make:

- other widths and head sizes: T5 with ``num_heads * d_kv != d_model`` (T5 v1.1 and Flan-T5
  shaped: gated-GELU, untied head), Llama / Gemma2 with an
  explicit ``head_dim`` that is not ``hidden / heads``;
- GQA ratios 1:1, 2:1, 3:1, 5:1 (``num_key_value_heads``);
- tied and untied input / output embeddings;
- chat templates in the processor's own files, only in ``tokenizer_config.json``, or none
  (LLaVA-NeXT, Idefics3, Qwen2-VL, PaliGemma saved without one, as many folders are);
- Idefics3 without image splitting, LLaVA-NeXT with a one-cell anyres grid and a wide one,
  LLaVA with ``vision_feature_select_strategy="full"`` (the CLS token is an image token too);
- tokenizers that pad on the left (chat and generation folders often do) and on the right;
- BERT saved as ``ForMaskedLM`` and RoBERTa bare (the first zoo does the opposite).

Tokenizers are trained here with the ``tokenizers`` library on shapes-world questions,
answers and captions plus the built-in probe's, with every printable ASCII character in the
alphabet (the probe never meets an unknown token).  :data:`CASES` maps a case name to
``(architecture, builder, task)``; :func:`save_case` writes one into a folder.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import torch
import transformers
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

transformers.logging.set_verbosity_error()
warnings.filterwarnings("ignore", message=".*torchvision.*")

ASCII = [chr(c) for c in range(32, 127)]
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|> {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}{IMAGE}{% else %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def chat_template(image: str) -> str:
    return CHAT.replace("{IMAGE}", image)


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """Shapes-world questions, answers and captions (training data) and the built-in probe's
    captions (compare), as the tokenizers' training text."""
    from repspace.data import ShapesWorld, make_probe_set
    from repspace.data.text import captions

    world = ShapesWorld(seed=5, n_train=24, n_val=2, n_test=2, image_size=18)
    ds = world.vqa_dataset("train")
    lines = [f"{qa.question} {qa.answer}" for _, qa in ds.items]
    lines += [c for i in range(24) for c in captions(world.scene("train", i))]
    lines += list(make_probe_set(64, seed=3).captions)
    return tuple(lines) + ("Describe the image. Question: Answer:",) * 3


def _bpe(
    specials: list[str], *, byte_level: bool, unk: str | None = None, vocab: int = 420
) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=unk) if unk else models.BPE())
    if byte_level:
        tok.pre_tokenizer, tok.decoder = (
            pre_tokenizers.ByteLevel(add_prefix_space=False),
            decoders.ByteLevel(),
        )
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        alphabet = ASCII + ["\u2581"]
    tok.train_from_iterator(
        corpus(),
        trainers.BpeTrainer(
            vocab_size=vocab,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=False,
        ),
    )
    return tok


def _post(tok: Tokenizer, single: str, pair: str | None = None) -> Tokenizer:
    names = sorted({p for p in (single + " " + (pair or "")).split() if not p.startswith("$")})
    tok.post_processor = processors.TemplateProcessing(
        single=single,
        pair=pair or f"{single} $B",
        special_tokens=[(n, tok.token_to_id(n)) for n in names],
    )
    return tok


def _vocab(tok) -> int:
    return len(tok) + 3  # not a multiple of anything: embeddings a little larger than the tokenizer


def _with_specials(tok, extra):
    if extra:
        tok.add_special_tokens({"additional_special_tokens": list(extra)})
    return tok


def sp_tokenizer(cls, bos: str, eos: str, unk: str, pad: str | None, extra=(), side: str = "right"):
    """Llama / Mistral / Gemma style: ``▁``-words, ``bos`` prepended."""
    specials = [unk, bos, eos, *([pad] if pad else []), *extra]
    tok = _post(_bpe(specials, byte_level=False, unk=unk), f"{bos} $A")
    kw = {"pad_token": pad} if pad else {}
    return _with_specials(
        cls(
            tokenizer_object=tok,
            bos_token=bos,
            eos_token=eos,
            unk_token=unk,
            padding_side=side,
            **kw,
        ),
        extra,
    )


def byte_tokenizer(
    cls, eos: str, pad: str | None, extra=(), side: str = "right", bos: str | None = None
):
    """GPT-2 / Qwen / OPT style byte-level BPE, nothing prepended."""
    specials = list(dict.fromkeys([eos, *([pad] if pad else []), *extra]))
    tok = _bpe(specials, byte_level=True)
    kw = {"pad_token": pad} if pad else {}
    return _with_specials(
        cls(
            tokenizer_object=tok,
            eos_token=eos,
            bos_token=bos,
            unk_token=None,
            padding_side=side,
            **kw,
        ),
        extra,
    )


def wordpiece(specials: list[str], unk: str) -> Tokenizer:
    """BERT style: lower-cased WordPiece, the vocabulary listed here (characters, ``##``
    continuations, then the corpus's words by frequency and spelling)."""
    from collections import Counter

    norm, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(
        w for line in corpus() for w, _ in pre.pre_tokenize_str(norm.normalize_str(line))
    )
    chars = [c.lower() for c in ASCII if c != " "]
    pieces = list(
        dict.fromkeys(
            [
                *specials,
                *chars,
                *(f"##{c}" for c in chars),
                *(w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))),
            ]
        )
    )
    tok = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token=unk))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = norm, pre, decoders.WordPiece()
    return tok


def bert_tokenizer():
    tok = wordpiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]")
    _post(tok, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B [SEP]")
    return transformers.BertTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def t5_tokenizer(side: str = "right"):
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tok.train_from_iterator(
        corpus(),
        trainers.UnigramTrainer(
            vocab_size=260,
            special_tokens=["<pad>", "</s>", "<unk>"],
            unk_token="<unk>",
            initial_alphabet=ASCII,
            show_progress=False,
        ),
    )
    _post(tok, "$A </s>")
    return transformers.T5TokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        padding_side=side,
    )


def llama_tok(extra=(), pad="<pad>", side="right"):
    return sp_tokenizer(transformers.LlamaTokenizerFast, "<s>", "</s>", "<unk>", pad, extra, side)


def gemma_tok(extra=(), side="right"):
    return sp_tokenizer(
        transformers.GemmaTokenizerFast, "<bos>", "<eos>", "<unk>", "<pad>", extra, side
    )


def qwen_tok(extra=(), side="left", template: str | None = None):
    tok = byte_tokenizer(
        transformers.Qwen2TokenizerFast,
        "<|im_end|>",
        "<|endoftext|>",
        ("<|im_start|>", *extra),
        side,
    )
    if template:
        tok.chat_template = template
    return tok


# -- text models ------------------------------------------------------------------------------
def gpt2():
    tok = byte_tokenizer(
        transformers.GPT2TokenizerFast, "<|endoftext|>", None, side="left", bos="<|endoftext|>"
    )
    cfg = transformers.GPT2Config(
        vocab_size=_vocab(tok),
        n_embd=48,
        n_layer=2,
        n_head=4,
        n_positions=160,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    return transformers.GPT2LMHeadModel(cfg), tok


def _lm(config_cls, model_cls, tok, **kw):
    cfg = config_cls(
        vocab_size=_vocab(tok),
        num_hidden_layers=2,
        max_position_embeddings=320,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **kw,
    )
    return model_cls(cfg), tok


def llama():  # GQA 2:1, head_dim 16 * 4 heads = 64 != hidden 48, tied
    return _lm(
        transformers.LlamaConfig,
        transformers.LlamaForCausalLM,
        llama_tok(pad=None),
        hidden_size=48,
        intermediate_size=80,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        tie_word_embeddings=True,
    )


def mistral():  # GQA 5:1, untied
    return _lm(
        transformers.MistralConfig,
        transformers.MistralForCausalLM,
        llama_tok(pad=None, side="left"),
        hidden_size=40,
        intermediate_size=72,
        num_attention_heads=5,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=None,
        tie_word_embeddings=False,
    )


def qwen2():  # GQA 3:1, chat template in the tokenizer config, pads left
    return _lm(
        transformers.Qwen2Config,
        transformers.Qwen2ForCausalLM,
        qwen_tok(template=chat_template("")),
        hidden_size=48,
        intermediate_size=96,
        num_attention_heads=6,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )


def gemma2():  # head_dim 12 * 4 = 48 != hidden 40, GQA 2:1
    return _lm(
        transformers.Gemma2Config,
        transformers.Gemma2ForCausalLM,
        gemma_tok(side="left"),
        hidden_size=40,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=12,
        query_pre_attn_scalar=12,
        sliding_window=32,
    )


def phi3():  # GQA 1:1, untied
    return _lm(
        transformers.Phi3Config,
        transformers.Phi3ForCausalLM,
        llama_tok(pad="<|endoftext|>"),
        hidden_size=48,
        intermediate_size=64,
        num_attention_heads=4,
        num_key_value_heads=4,
        tie_word_embeddings=False,
    )


def bert():  # saved as ForMaskedLM (the first zoo saves it bare)
    tok = bert_tokenizer()
    cfg = transformers.BertConfig(
        vocab_size=_vocab(tok),
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=72,
        max_position_embeddings=96,
        pad_token_id=tok.pad_token_id,
    )
    return transformers.BertForMaskedLM(cfg), tok


def roberta():  # bare (the first zoo saves ForMaskedLM)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = _post(_bpe(specials, byte_level=True), "<s> $A </s>", "<s> $A </s> </s> $B </s>")
    tok = transformers.RobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    cfg = transformers.RobertaConfig(
        vocab_size=_vocab(tok),
        hidden_size=40,
        num_hidden_layers=2,
        num_attention_heads=5,
        intermediate_size=64,
        max_position_embeddings=100,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return transformers.RobertaModel(cfg), tok


def _t5(d_model, num_heads, d_kv, d_ff, decoder_layers, side="right"):
    tok = t5_tokenizer(side)
    cfg = transformers.T5Config(
        vocab_size=_vocab(tok),
        d_model=d_model,
        d_kv=d_kv,
        num_heads=num_heads,
        d_ff=d_ff,
        num_layers=2,
        num_decoder_layers=decoder_layers,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    return transformers.T5ForConditionalGeneration(cfg), tok


def t5_v11():  # T5 v1.1 shaped: 3 heads x 8 = 24 != d_model 40, gated-GELU, untied
    return _t5(40, 3, 8, 64, 2)


def t5_deep_decoder():
    """More decoder than encoder layers: transformers 5.24's own ``generate`` sizes its cache
    by the encoder's depth and fails (IndexError in cache_utils); not in :data:`CASES` -- the
    test of honest blame uses it (repspace's inputs verified, the model's code fails)."""
    return _t5(40, 3, 8, 64, 3)


def flan_t5():  # Flan-T5-small shaped: 6 heads x 8 = 48 != d_model 32, pads left
    return _t5(32, 6, 8, 48, 2, side="left")


# -- vision encoders (no training recipe: refused in one line) -------------------------------------
V = dict(
    hidden_size=24,
    intermediate_size=40,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=24,
    patch_size=8,
)


def _clip_images(size=24, cls=transformers.CLIPImageProcessor, **kw):
    return cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **kw)


def clip():
    tok = byte_tokenizer(
        transformers.CLIPTokenizerFast,
        "<|endoftext|>",
        "<|endoftext|>",
        ("<|startoftext|>",),
        bos="<|startoftext|>",
    )
    cfg = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=_vocab(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=48,
            max_position_embeddings=77,
        ),
        vision_config=dict(V),
        projection_dim=12,
    )
    return transformers.CLIPModel(cfg), transformers.CLIPProcessor(_clip_images(), tok)


def siglip():
    tok = gemma_tok()
    cfg = transformers.SiglipConfig(
        text_config=dict(
            vocab_size=_vocab(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=48,
            max_position_embeddings=64,
        ),
        vision_config=dict(V),
    )
    ip = transformers.SiglipImageProcessor(size={"height": 24, "width": 24})
    return transformers.SiglipModel(cfg), transformers.SiglipProcessor(ip, tok)


def vit():
    return (
        transformers.ViTModel(transformers.ViTConfig(**V)),
        transformers.ViTImageProcessor(size={"height": 24, "width": 24}),
    )


# -- image-text models --------------------------------------------------------------------------
def blip():
    tok = bert_tokenizer()
    tok.add_special_tokens({"bos_token": "[DEC]"})
    text = dict(
        vocab_size=_vocab(tok),
        hidden_size=40,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        encoder_hidden_size=24,
        max_position_embeddings=96,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        sep_token_id=tok.sep_token_id,
    )
    cfg = transformers.BlipConfig(text_config=text, vision_config=dict(V), projection_dim=12)
    ip = transformers.BlipImageProcessor(size={"height": 24, "width": 24})
    return transformers.BlipForConditionalGeneration(cfg), transformers.BlipProcessor(ip, tok)


def blip2():
    tok = byte_tokenizer(transformers.GPT2TokenizerFast, "</s>", "<pad>", ("<image>",), bos="</s>")
    cfg = transformers.Blip2Config(
        vision_config=dict(V),
        qformer_config=dict(
            hidden_size=24,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=40,
            encoder_hidden_size=24,
            vocab_size=_vocab(tok),
        ),
        text_config=transformers.OPTConfig(
            vocab_size=_vocab(tok),
            hidden_size=40,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            word_embed_proj_dim=40,
            max_position_embeddings=320,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        num_query_tokens=3,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    ip = transformers.BlipImageProcessor(size={"height": 24, "width": 24})
    return transformers.Blip2ForConditionalGeneration(cfg), transformers.Blip2Processor(
        ip, tok, num_query_tokens=3
    )


def _llama_text(tok, hidden=40, heads=4, kv=2):
    return transformers.LlamaConfig(
        vocab_size=_vocab(tok),
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )


def _clip_vision():
    return transformers.CLIPVisionConfig(**V, projection_dim=12)


def llava():  # "full" features (CLS too), chat template in the processor's own file
    tok = llama_tok(("<image>",))
    cfg = transformers.LlavaConfig(
        vision_config=_clip_vision(),
        text_config=_llama_text(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="full",
    )
    proc = transformers.LlavaProcessor(
        _clip_images(),
        tok,
        patch_size=8,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        chat_template=chat_template("<image>"),
    )
    return transformers.LlavaForConditionalGeneration(cfg), proc


def _llava_next(grid, template):
    tok = llama_tok(("<image>",), side="left")
    cfg = transformers.LlavaNextConfig(
        vision_config=_clip_vision(),
        text_config=_llama_text(tok, 48, 6, 2),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        image_grid_pinpoints=grid,
        vision_feature_select_strategy="default",
    )
    ip = _clip_images(cls=transformers.LlavaNextImageProcessor, image_grid_pinpoints=grid)
    proc = transformers.LlavaNextProcessor(
        ip,
        tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    return transformers.LlavaNextForConditionalGeneration(cfg), proc


def llava_next():  # anyres over a wide grid, no chat template
    return _llava_next([[24, 48], [48, 24], [48, 48]], None)


def llava_next_chat():  # one-cell grid (no split), chat template
    return _llava_next([[24, 24]], chat_template("<image>"))


def _idefics3(splitting: bool, template: str | None):
    extra = ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
    tok = llama_tok(extra)
    cfg = transformers.Idefics3Config(
        vision_config=dict(V, model_type="idefics3_vision"),
        text_config=_llama_text(tok, 48, 4, 1),
        scale_factor=3,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    ip = transformers.Idefics3ImageProcessor(
        do_image_splitting=splitting,
        size={"longest_edge": 48 if splitting else 24},
        max_image_size={"longest_edge": 24},
    )
    proc = transformers.Idefics3Processor(ip, tok, image_seq_len=1, chat_template=template)
    return transformers.Idefics3ForConditionalGeneration(cfg), proc


def idefics3():  # no image splitting, no chat template
    return _idefics3(False, None)


def idefics3_chat():  # image splitting, chat template
    return _idefics3(
        True, chat_template("<image>").replace("\n{% endfor %}", "<end_of_utterance>\n{% endfor %}")
    )


def paligemma(side: str = "left"):  # no chat template (as PaliGemma ships), head_dim 12 != 40 / 4
    tok = gemma_tok(("<image>",), side=side)
    cfg = transformers.PaliGemmaConfig(
        vision_config=dict(V, model_type="siglip_vision_model", projection_dim=40),
        text_config=dict(
            model_type="gemma",
            vocab_size=_vocab(tok),
            hidden_size=40,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=12,
            max_position_embeddings=320,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projection_dim=40,
    )
    ip = transformers.SiglipImageProcessor(size={"height": 24, "width": 24})
    ip.image_seq_length = 9  # (24 / 8) ** 2
    return transformers.PaliGemmaForConditionalGeneration(cfg), transformers.PaliGemmaProcessor(
        ip, tok
    )


class QwenFolder:
    """Qwen2-VL's processor needs torchvision (its video half); the folder gets what a hub
    folder holds for images and text: the tokenizer (with or without a chat template in its
    config) and the image processor naming Qwen2VLProcessor as its processor class."""

    def __init__(self, tokenizer, image_processor):
        self.tokenizer, self.image_processor = tokenizer, image_processor

    def save_pretrained(self, folder):
        folder = Path(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        path = folder / "preprocessor_config.json"
        cfg = json.loads(path.read_text())
        cfg["processor_class"] = "Qwen2VLProcessor"
        path.write_text(json.dumps(cfg, indent=2))


def _qwen2_vl(template: str | None):
    marks = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    tok = qwen_tok(marks, template=template)
    ids = {m: tok.convert_tokens_to_ids(m) for m in marks}
    cfg = transformers.Qwen2VLConfig(
        text_config=dict(
            vocab_size=_vocab(tok),
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            rope_scaling={"type": "mrope", "mrope_section": [2, 2, 2]},
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            depth=2,
            embed_dim=24,
            hidden_size=48,
            num_heads=2,
            mlp_ratio=2,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    ip = transformers.Qwen2VLImageProcessor(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=48 * 48
    )
    return transformers.Qwen2VLForConditionalGeneration(cfg), QwenFolder(tok, ip)


def qwen2_vl():  # no chat template anywhere
    return _qwen2_vl(None)


def qwen2_vl_tokenizer_template():  # the chat template only in tokenizer_config.json
    return _qwen2_vl(chat_template("<|vision_start|><|image_pad|><|vision_end|>"))


# case -> (architecture of the compatibility table, builder, task trained; None: refused)
CASES = {
    "gpt2": ("gpt2", gpt2, "vqa"),
    "llama": ("llama", llama, "vqa"),
    "qwen2": ("qwen2", qwen2, "vqa"),
    "mistral": ("mistral", mistral, "vqa"),
    "gemma2": ("gemma2", gemma2, "vqa"),
    "phi3": ("phi3", phi3, "vqa"),
    "bert": ("bert", bert, "vqa"),
    "roberta": ("roberta", roberta, "vqa"),
    "t5_v11": ("t5", t5_v11, "vqa"),
    "flan_t5": ("t5", flan_t5, "vqa"),
    "clip": ("clip", clip, None),
    "siglip": ("siglip", siglip, None),
    "vit": ("vit", vit, None),
    "blip": ("blip", blip, "vqa"),
    "blip2": ("blip2", blip2, "captioning"),
    "llava": ("llava", llava, "vqa"),
    "llava_next": ("llava_next", llava_next, "vqa"),
    "llava_next_chat": ("llava_next", llava_next_chat, "vqa"),
    "qwen2_vl": ("qwen2_vl", qwen2_vl, "vqa"),
    "qwen2_vl_tokenizer_template": ("qwen2_vl", qwen2_vl_tokenizer_template, "vqa"),
    "paligemma": ("paligemma", paligemma, "vqa"),
    "idefics3": ("idefics3", idefics3, "vqa"),
    "idefics3_chat": ("idefics3", idefics3_chat, "captioning"),
}


def save_case(name: str, folder: Path) -> Path:
    """Build case ``name`` (seed 1) and ``save_pretrained`` model and processor into ``folder``."""
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, processor = CASES[name][1]()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model.eval().save_pretrained(folder)
        processor.save_pretrained(folder)
    return folder
