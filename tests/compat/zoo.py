"""Tiny random models of real architectures, saved the way users have them.

Each builder returns ``(model, processor)``: a hidden-32, 2-layer model of the real class
and the tokenizer / processor class its hub checkpoints ship, with a tokenizer trained
offline here (``tokenizers``) and the real quirks kept: no pad token where the real one
has none (GPT-2, Llama, Mistral), the model's own image token, chat templates where the
real processor has one, anyres (LLaVA-NeXT) and image splitting (Idefics3) on.
:func:`save` writes both with ``save_pretrained`` into a folder.

SigLIP ships its sentencepiece ``SiglipTokenizer`` (trained here with the sentencepiece
library), which needs the ``sentencepiece`` and ``protobuf`` packages (the ``test`` extra);
without them a Gemma fast tokenizer stands in (as SigLIP 2 ships).
"""

from __future__ import annotations

import functools
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
warnings.filterwarnings("ignore", message=".*requires torchvision.*")

H = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
VISION = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=16,
    patch_size=8,
)
LLAMA_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {% else %}ASSISTANT: "
    "{% endif %}{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """Text to train the tokenizers on: the built-in probe's captions and some prose."""
    from repspace.data import make_probe_set

    prose = (
        "The quick brown fox jumps over the lazy dog. Describe the image in one sentence. "
        "What is shown in the picture? A photo of a cat sitting on a red mat. "
        "Question: how many shapes are there? Answer: two."
    ).split(". ")
    return tuple(make_probe_set(256, seed=1).captions) + tuple(prose) * 4


def _train(tok: Tokenizer, trainer) -> Tokenizer:
    tok.train_from_iterator(corpus(), trainer)
    return tok


def byte_bpe(specials: list[str], vocab: int = 400) -> Tokenizer:
    """GPT-2 / RoBERTa / Qwen / OPT style byte-level BPE."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return _train(
        tok,
        trainers.BpeTrainer(
            vocab_size=vocab,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )


def sp_bpe(specials: list[str], unk: str, vocab: int = 300) -> Tokenizer:
    """Llama / Mistral / Gemma style BPE on ``▁``-marked words (sentencepiece-like)."""
    tok = Tokenizer(models.BPE(unk_token=unk, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    return _train(tok, trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials))


def wordpiece(specials: list[str], vocab: int = 300) -> Tokenizer:
    """BERT style WordPiece.  The vocabulary is built here, not by tokenizers'
    ``WordPieceTrainer``: that trainer breaks ties between equally frequent merges in hash
    order, so every process learnt another vocabulary (three runs, three vocabularies) and
    the numbers of every test on a BERT-tokenized model changed from run to run.  Here:
    the specials, every character alone and as a ``##`` continuation, then the corpus's
    whole words by frequency (ties by spelling) -- what a trained WordPiece vocabulary holds
    at this size, the same in every process."""
    from collections import Counter

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    words = Counter(
        w
        for text in corpus()
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))
    )
    chars = sorted({c for w in words for c in w})
    pieces = [*specials, *chars, *(f"##{c}" for c in chars)]
    pieces += [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][
        : max(0, vocab - len(pieces))
    ]
    tok.model = models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]")
    return tok


def unigram(specials: list[str], vocab: int = 300) -> Tokenizer:
    """T5 style Unigram.  tokenizers' ``UnigramTrainer`` finds the same pieces in every
    process but with scores that differ in the sixth decimal (and so in order and ids); the
    pieces are re-listed in a fixed order with their scores rounded, so a process's ids and
    segmentations are every process's."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    _train(
        tok, trainers.UnigramTrainer(vocab_size=vocab, special_tokens=specials, unk_token="<unk>")
    )
    import json

    model = json.loads(tok.to_str())["model"]
    pieces = model["vocab"]
    head = [(p, 0.0) for p, _ in pieces[: len(specials)]]
    rest = sorted(
        ((p, round(s, 1)) for p, s in pieces[len(specials) :]), key=lambda ps: (-ps[1], ps[0])
    )
    tok.model = models.Unigram([*head, *rest], unk_id=model["unk_id"], byte_fallback=False)
    return tok


def template(tok: Tokenizer, single: str) -> Tokenizer:
    names = [p for p in single.split() if p != "$A"]
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=single + " $B", special_tokens=[(n, tok.token_to_id(n)) for n in names]
    )
    return tok


def vocab_of(tokenizer) -> int:
    return (len(tokenizer) + 15) // 16 * 16


# -- tokenizers as the hub ships them ---------------------------------------------------------
def gpt2_tokenizer():
    tok = byte_bpe(["<|endoftext|>"])
    return transformers.GPT2TokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def llama_tokenizer(extra: tuple[str, ...] = (), pad: str | None = None):
    """Llama / Mistral: ``<s>`` prepended, no pad token (unless ``pad``)."""
    tok = template(
        sp_bpe(["<unk>", "<s>", "</s>", *extra, *([pad] if pad else [])], "<unk>"), "<s> $A"
    )
    kw = {"pad_token": pad} if pad else {}
    out = transformers.LlamaTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", **kw
    )
    if extra:
        out.add_special_tokens({"additional_special_tokens": list(extra)})
    return out


def gemma_tokenizer(extra: tuple[str, ...] = ()):
    tok = template(sp_bpe(["<pad>", "<eos>", "<bos>", "<unk>", *extra], "<unk>"), "<bos> $A")
    out = transformers.GemmaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
    if extra:
        out.add_special_tokens({"additional_special_tokens": list(extra)})
    return out


def qwen2_tokenizer(extra: tuple[str, ...] = ()):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra]
    out = transformers.Qwen2TokenizerFast(
        tokenizer_object=byte_bpe(specials),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )
    out.add_special_tokens({"additional_special_tokens": specials[1:]})
    out.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}"
        "{{ m['content'] }}{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}"
        "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return out


def bert_tokenizer():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = template(wordpiece(specials), "[CLS] $A [SEP]")
    return transformers.BertTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def roberta_tokenizer():
    tok = template(byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]), "<s> $A </s>")
    return transformers.RobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def t5_tokenizer():
    tok = template(unigram(["<pad>", "</s>", "<unk>"]), "$A </s>")
    return transformers.T5TokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", extra_ids=0
    )


# CLIP's pre-tokenizer (transformers rebuilds it when the folder is loaded).
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _bpe_suffix(tok: Tokenizer, specials: list[str], size: int, suffix: str):
    """BPE vocabulary and merges with word ends marked by ``suffix``, learnt from the corpus
    as tokenizers' ``BpeTrainer`` learns them (most frequent adjacent pair first), but with
    ties broken by spelling: the trainer numbers the new ``x</w>`` symbols in hash order and
    breaks count ties by those numbers, so each process learnt other merges."""
    from collections import Counter

    words = Counter(
        w
        for text in corpus()
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))
    )
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = [*specials, *alphabet, *sorted({w[-1] + suffix for w in words})]
    split = {w: [*w[:-1], w[-1] + suffix] for w in words}
    merges = []
    while len(vocab) < size:
        pairs = Counter()
        for w, n in words.items():
            sym = split[w]
            for pair in zip(sym, sym[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        vocab.append(best[0] + best[1])
        for w, sym in split.items():
            i, out = 0, []
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(sym[i] + sym[i + 1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            split[w] = out
    return {t: i for i, t in enumerate(dict.fromkeys(vocab))}, merges


def clip_tokenizer():
    """CLIP's byte-level BPE with word ends marked ``</w>``, lower-cased, as transformers'
    CLIPTokenizer rebuilds it from ``vocab.json`` / ``merges.txt`` when the folder loads (a
    vocabulary without the ``</w>`` pieces would load as a third unknown tokens)."""
    from tokenizers import Regex

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    vocab, merges = _bpe_suffix(tok, ["<|startoftext|>", "<|endoftext|>"], 400, "</w>")
    tok.model = models.BPE(vocab, merges, unk_token="<|endoftext|>", end_of_word_suffix="</w>")
    tok = template(tok, "<|startoftext|> $A <|endoftext|>")
    return transformers.CLIPTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


def ids(tokenizer, *tokens: str) -> dict:
    return {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}


# -- text models -------------------------------------------------------------------------------
def gpt2():
    tok = gpt2_tokenizer()
    eos = tok.eos_token_id
    cfg = transformers.GPT2Config(
        vocab_size=vocab_of(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    return transformers.GPT2LMHeadModel(cfg), tok


def _decoder_lm(config_cls, model_cls, tok, **extra):
    cfg = config_cls(
        vocab_size=vocab_of(tok),
        num_key_value_heads=1,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **H,
        **extra,
    )
    return model_cls(cfg), tok


def llama():
    return _decoder_lm(transformers.LlamaConfig, transformers.LlamaForCausalLM, llama_tokenizer())


def mistral():
    return _decoder_lm(
        transformers.MistralConfig,
        transformers.MistralForCausalLM,
        llama_tokenizer(),
        sliding_window=None,
    )


def qwen2():
    return _decoder_lm(transformers.Qwen2Config, transformers.Qwen2ForCausalLM, qwen2_tokenizer())


def gemma2():
    return _decoder_lm(
        transformers.Gemma2Config,
        transformers.Gemma2ForCausalLM,
        gemma_tokenizer(),
        head_dim=16,
        sliding_window=64,
    )


def phi3():
    # Phi-3 mini ships Llama's tokenizer with <|endoftext|> as its pad token.
    return _decoder_lm(
        transformers.Phi3Config, transformers.Phi3ForCausalLM, llama_tokenizer(pad="<|endoftext|>")
    )


def bert():
    tok = bert_tokenizer()
    cfg = transformers.BertConfig(
        vocab_size=vocab_of(tok), max_position_embeddings=128, pad_token_id=tok.pad_token_id, **H
    )
    return transformers.BertModel(cfg), tok  # saved bare, as sentence-transformers folders are


def roberta():
    tok = roberta_tokenizer()
    cfg = transformers.RobertaConfig(
        vocab_size=vocab_of(tok),
        max_position_embeddings=130,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **H,
    )
    return transformers.RobertaForMaskedLM(cfg), tok


def t5():
    tok = t5_tokenizer()
    cfg = transformers.T5Config(
        vocab_size=vocab_of(tok),
        d_model=32,
        d_ff=64,
        d_kv=16,
        num_layers=2,
        num_heads=2,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.pad_token_id,
    )
    return transformers.T5ForConditionalGeneration(cfg), tok


# -- vision and vision-language encoders ------------------------------------------------------
def clip_image_processor(size: int = 16, cls=transformers.CLIPImageProcessor, **kw):
    return cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **kw)


def clip():
    tok = clip_tokenizer()
    cfg = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=vocab_of(tok),
            max_position_embeddings=77,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **H,
        ),
        vision_config=VISION,
        projection_dim=16,
    )
    return transformers.CLIPModel(cfg), transformers.CLIPProcessor(clip_image_processor(), tok)


def siglip_tokenizer():
    """SigLIP's own ``SiglipTokenizer``: a sentencepiece unigram model (``spiece.model``, trained
    here with the sentencepiece library; ``</s>`` pads, lower-cased).  Without the
    ``sentencepiece`` / ``protobuf`` packages (the ``test`` extra installs them) a Gemma fast
    tokenizer stands in, as SigLIP 2 ships."""
    import importlib.util
    import io
    import tempfile

    if not all(importlib.util.find_spec(m) for m in ("sentencepiece", "google.protobuf")):
        return gemma_tokenizer()
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=model,
        vocab_size=300,
        model_type="unigram",
        hard_vocab_limit=False,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        minloglevel=2,
        num_threads=1,
    )
    with tempfile.TemporaryDirectory() as tmp:  # the tokenizer keeps the model in memory
        path = Path(tmp) / "spiece.model"
        path.write_bytes(model.getvalue())
        return transformers.SiglipTokenizer(vocab_file=str(path))


def siglip():
    tok = siglip_tokenizer()
    cfg = transformers.SiglipConfig(
        text_config=dict(
            vocab_size=vocab_of(tok),
            max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            **H,
        ),
        vision_config=VISION,
    )
    proc = transformers.SiglipProcessor(
        transformers.SiglipImageProcessor(size={"height": 16, "width": 16}), tok
    )
    return transformers.SiglipModel(cfg), proc


def vit():
    cfg = transformers.ViTConfig(**VISION)
    return transformers.ViTModel(cfg), transformers.ViTImageProcessor(
        size={"height": 16, "width": 16}
    )


def blip_image_processor():
    return transformers.BlipImageProcessor(size={"height": 16, "width": 16})


def blip():
    tok = bert_tokenizer()
    # BLIP's tokenizer adds [DEC] as bos; the captioning decoder reads it at position 0.
    tok.add_special_tokens({"bos_token": "[DEC]"})
    text = dict(
        vocab_size=vocab_of(tok),
        max_position_embeddings=128,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        sep_token_id=tok.sep_token_id,
        **H,
    )
    cfg = transformers.BlipConfig(
        text_config=text, vision_config=dict(VISION, initializer_range=0.02), projection_dim=16
    )
    return (
        transformers.BlipForConditionalGeneration(cfg),
        transformers.BlipProcessor(blip_image_processor(), tok),
    )


def blip2():
    tok = gpt2_tokenizer()
    tok.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": ["<image>"]})
    n_query = 4
    cfg = transformers.Blip2Config(
        vision_config=dict(VISION),
        qformer_config=dict(H, encoder_hidden_size=32, vocab_size=vocab_of(tok)),
        text_config=transformers.OPTConfig(
            vocab_size=vocab_of(tok),
            hidden_size=32,
            ffn_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=256,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        ),
        num_query_tokens=n_query,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    proc = transformers.Blip2Processor(blip_image_processor(), tok, num_query_tokens=n_query)
    return transformers.Blip2ForConditionalGeneration(cfg), proc


# -- LLaVA-style models: image features spliced into the LM sequence -------------------------------
def _clip_vision():
    return transformers.CLIPVisionConfig(**VISION, projection_dim=16)


def _llama_text(tok):
    return transformers.LlamaConfig(
        vocab_size=vocab_of(tok),
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **H,
    )


def llava():
    tok = llama_tokenizer(("<image>",), pad="<pad>")  # llava-1.5-hf adds <pad>
    cfg = transformers.LlavaConfig(
        vision_config=_clip_vision(),
        text_config=_llama_text(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    proc = transformers.LlavaProcessor(
        clip_image_processor(),
        tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAMA_TEMPLATE,
    )
    return transformers.LlavaForConditionalGeneration(cfg), proc


def llava_next():
    tok = llama_tokenizer(("<image>",), pad="<pad>")
    grid = [[16, 32], [32, 16], [32, 32]]
    cfg = transformers.LlavaNextConfig(
        vision_config=_clip_vision(),
        text_config=_llama_text(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        image_grid_pinpoints=grid,
        vision_feature_select_strategy="default",
    )
    image_processor = clip_image_processor(
        cls=transformers.LlavaNextImageProcessor, image_grid_pinpoints=grid
    )
    proc = transformers.LlavaNextProcessor(
        image_processor,
        tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAMA_TEMPLATE,
    )
    return transformers.LlavaNextForConditionalGeneration(cfg), proc


def paligemma():
    tok = gemma_tokenizer(("<image>",))
    n_image = 4  # (16 / 8) ** 2 patches
    cfg = transformers.PaliGemmaConfig(
        vision_config=dict(VISION, model_type="siglip_vision_model", projection_dim=32),
        text_config=dict(
            model_type="gemma",
            vocab_size=vocab_of(tok),
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=256,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            **H,
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projection_dim=32,
    )
    image_processor = transformers.SiglipImageProcessor(size={"height": 16, "width": 16})
    image_processor.image_seq_length = n_image
    proc = transformers.PaliGemmaProcessor(image_processor, tok)
    return transformers.PaliGemmaForConditionalGeneration(cfg), proc


def qwen2_vl():
    tok = qwen2_tokenizer(("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"))
    ids_ = ids(tok, "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    cfg = transformers.Qwen2VLConfig(
        text_config=dict(
            vocab_size=vocab_of(tok),
            num_key_value_heads=1,
            max_position_embeddings=512,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            bos_token_id=None,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **H,
        ),
        vision_config=dict(
            depth=2,
            embed_dim=32,
            hidden_size=32,
            num_heads=2,
            mlp_ratio=2,
            patch_size=8,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids_["<|image_pad|>"],
        video_token_id=ids_["<|video_pad|>"],
        vision_start_token_id=ids_["<|vision_start|>"],
        vision_end_token_id=ids_["<|vision_end|>"],
    )
    image_processor = transformers.Qwen2VLImageProcessor(
        patch_size=8, merge_size=2, temporal_patch_size=2, min_pixels=16 * 16, max_pixels=32 * 32
    )
    # Qwen2VLProcessor needs a video processor, which needs torchvision (absent here): the
    # folder gets the files the hub folder (Qwen/Qwen2-VL-2B-Instruct) holds for images and
    # text: the tokenizer, the image processor's preprocessor_config.json naming
    # Qwen2VLProcessor as its processor class, and the processor's chat_template.json.
    return (
        transformers.Qwen2VLForConditionalGeneration(cfg),
        _Parts(tok, image_processor, processor_class="Qwen2VLProcessor"),
    )


def idefics3():
    extra = ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>")
    tok = llama_tokenizer(extra, pad="<pad>")
    text = _llama_text(tok)
    cfg = transformers.Idefics3Config(
        vision_config=dict(VISION, model_type="idefics3_vision"),
        text_config=text,
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    image_processor = transformers.Idefics3ImageProcessor(
        do_image_splitting=True, size={"longest_edge": 32}, max_image_size={"longest_edge": 16}
    )
    template = LLAMA_TEMPLATE.replace("\\n{% endfor %}", "<end_of_utterance>\\n{% endfor %}")
    proc = transformers.Idefics3Processor(
        image_processor, tok, image_seq_len=1, chat_template=template
    )
    return transformers.Idefics3ForConditionalGeneration(cfg), proc


class _Parts:
    """Processor parts saved side by side (where the processor class itself cannot be built),
    in the hub's older layout: ``preprocessor_config.json`` names the processor class and
    ``chat_template.json`` holds the processor's chat template (the tokenizer's)."""

    def __init__(self, tokenizer, image_processor, processor_class: str):
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.processor_class = processor_class

    def save_pretrained(self, folder):
        import json

        folder = Path(folder)
        self.tokenizer.save_pretrained(folder)
        self.image_processor.save_pretrained(folder)
        cfg = json.loads((folder / "preprocessor_config.json").read_text())
        cfg["processor_class"] = self.processor_class
        (folder / "preprocessor_config.json").write_text(json.dumps(cfg, indent=2))
        (folder / "chat_template.json").write_text(
            json.dumps({"chat_template": self.tokenizer.chat_template}, indent=2)
        )


# name -> builder
ARCHITECTURES = {
    "gpt2": gpt2,
    "llama": llama,
    "qwen2": qwen2,
    "mistral": mistral,
    "gemma2": gemma2,
    "phi3": phi3,
    "bert": bert,
    "roberta": roberta,
    "t5": t5,
    "clip": clip,
    "siglip": siglip,
    "vit": vit,
    "blip": blip,
    "blip2": blip2,
    "llava": llava,
    "llava_next": llava_next,
    "qwen2_vl": qwen2_vl,
    "paligemma": paligemma,
    "idefics3": idefics3,
}


def save(name: str, folder: Path) -> Path:
    """Build ``name`` with fixed seeds and ``save_pretrained`` model and processor into ``folder``."""
    torch.manual_seed(0)
    model, processor = ARCHITECTURES[name]()
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
