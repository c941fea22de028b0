"""`repspace compare` on the models users bring: 19 real architectures, default probe, no workaround.

Each architecture (tests/compat/zoo.py) is a tiny random model saved with ``save_pretrained``
next to the tokenizer / processor class its hub checkpoints ship.  The checks and the docs
table share tests/compat/checks.py.  The targeted tests below pin each general fix on the
smallest model that needs it.
"""

import json
import shutil

import pytest
import torch

from tests.compat import checks, zoo


@pytest.mark.parametrize("arch", list(zoo.ARCHITECTURES))
def test_architecture(arch, arch_results):
    results = arch_results(arch)
    assert results == dict.fromkeys(checks.CHECKS), results


def test_docs_compatibility_table_matches_the_suite(arch_results):
    """docs/compatibility.md shows what the checks find (regenerate: python -m tests.compat.table)."""
    from tests.compat.table import DOC

    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[4:-1]]
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("| architecture")
    }
    assert set(rows) == set(zoo.ARCHITECTURES), "regenerate: python -m tests.compat.table"
    for arch in zoo.ARCHITECTURES:
        found = ["✓" if arch_results(arch)[c] is None else "✗" for c in checks.CHECKS]
        assert [c[0] for c in rows[arch]] == found, (
            f"{arch}: docs say {rows[arch]}, the suite finds {found}; regenerate: "
            "python -m tests.compat.table"
        )


def _probe(n=4):
    from repspace.probe import load_probe

    return load_probe("builtin", num_samples=n)


def test_pad_token_chosen_on_a_copy_and_never_written(zoo_root):
    from transformers import AutoTokenizer

    from repspace.checkpoints.loader import load_processor
    from repspace.probe.prompts import with_pad_token

    base = checks.build("gpt2", zoo_root)["base"]
    before = {f.name: f.read_bytes() for f in base.iterdir()}
    tok = load_processor(str(base))
    assert tok.pad_token is None
    padded = with_pad_token(tok)
    assert padded.pad_token == tok.eos_token and tok.pad_token is None and padded is not tok
    checks.compare(base, [base])
    assert {f.name: f.read_bytes() for f in base.iterdir()} == before
    assert AutoTokenizer.from_pretrained(base).pad_token is None


@pytest.mark.parametrize("arch", ["llava", "llava_next", "idefics3", "paligemma", "blip2"])
def test_truncation_never_cuts_image_tokens(arch, zoo_root):
    from repspace.checkpoints.loader import load_processor
    from repspace.capture.tokens import image_token_id
    from repspace.probe import make_batches

    base = checks.build(arch, zoo_root)["base"]
    model = checks.load(base)
    batch = lambda n: next(
        make_batches(
            _probe(),
            model,
            load_processor(str(base)),  # noqa: E731
            max_length=n,
        )
    )
    short, full = batch(1), batch(64)
    image = image_token_id(model)
    per_row = (short["input_ids"] == image).sum(1)
    assert per_row.min() > 0 and torch.equal(per_row, (full["input_ids"] == image).sum(1))
    assert short["input_ids"].shape[1] < full["input_ids"].shape[1]  # the text was cut


def test_encoder_decoder_gets_shifted_decoder_inputs(zoo_root):
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import make_batches

    base = checks.build("t5", zoo_root)["base"]
    model = checks.load(base)
    b = next(make_batches(_probe(), model, load_processor(str(base))))
    start = model.config.decoder_start_token_id
    assert (b["decoder_input_ids"][:, 0] == start).all()
    assert torch.equal(b["decoder_input_ids"][:, 1:], b["input_ids"][:, :-1])
    # each row: start + its own tokens but the last (eos), whatever the batch's padding
    assert torch.equal(b["decoder_attention_mask"], b["attention_mask"])


def test_backbone_and_task_head_compare_on_the_shared_backbone(zoo_root, tmp_path):
    import transformers

    base = checks.build("bert", zoo_root)["base"]
    head = transformers.BertForSequenceClassification.from_pretrained(base, num_labels=3)
    with torch.no_grad():
        for p in head.bert.parameters():
            p.add_(0.05 * torch.randn_like(p))
    head.save_pretrained(tmp_path / "cls")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base / f, tmp_path / "cls" / f)
    result = checks.compare(base, [tmp_path / "cls"])
    assert result.layers == ["encoder.layer.0", "encoder.layer.1"]
    assert min(checks.ckas(result, 0)) < 1 - 1e-6
    assert any("shared backbone" in w for w in result.warnings)
    # the other way round: head model as base, bare backbone as tuned
    assert checks.compare(tmp_path / "cls", [base]).layers == result.layers


def test_degenerate_tokenizer_uses_the_tuned_one_or_fails(zoo_root, tmp_path):
    paths = checks.build("bert", zoo_root)
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(paths["base"] / f, bare / f)
    good = checks.compare(paths["base"], [paths["full"]])
    borrowed = checks.compare(bare, [paths["full"]])
    assert any("not the base's" in w for w in borrowed.warnings)
    assert checks.ckas(borrowed, 0) == checks.ckas(good, 0)
    with pytest.raises(ValueError, match=r"\[UNK\]") as err:
        checks.compare(bare, [bare])
    assert "\n" not in str(err.value)


def test_model_taking_images_without_image_processor_fails(zoo_root, tmp_path):
    base = checks.build("llava", zoo_root)["base"]
    text_only = tmp_path / "llava-no-image-processor"
    shutil.copytree(base, text_only)
    for f in ("preprocessor_config.json", "processor_config.json"):
        (text_only / f).unlink(missing_ok=True)
    with pytest.raises(ValueError, match="no image processor") as err:
        checks.compare(text_only, [text_only])
    assert "\n" not in str(err.value)


def test_adapter_that_misses_its_base_is_refused(zoo_root, tmp_path):
    """A sequence-classification LoRA (keys under ``bert.``) applied onto the bare encoder."""
    import transformers
    from peft import LoraConfig, TaskType, get_peft_model

    from repspace.checkpoints import CheckpointError

    base = checks.build("bert", zoo_root)["base"]
    head = transformers.BertForSequenceClassification.from_pretrained(base, num_labels=2)
    lora = get_peft_model(
        head,
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=2,
            target_modules=["query", "value"],
            init_lora_weights=False,
        ),
    )
    lora.save_pretrained(tmp_path / "cls-lora")
    cfg = json.loads((tmp_path / "cls-lora" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (tmp_path / "cls-lora" / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="found no place in its base") as err:
        checks.compare(base, [tmp_path / "cls-lora"])
    assert "\n" not in str(err.value)


def test_first_token_pooling_on_a_causal_model_fails_loudly(zoo_root):
    paths = checks.build("llama", zoo_root)
    with pytest.raises(ValueError, match="--pooling mean or last") as err:
        checks.compare(paths["base"], [paths["lora"]], pooling="first")
    assert "\n" not in str(err.value)
    assert checks.compare(paths["base"], [paths["lora"]], pooling="last").layers


def test_first_token_pooling_on_a_vlm_names_the_constant_layers(zoo_root):
    """`first` on LLaVA: the vision tower's first token (CLS) differs per image, the causal text
    stream's (BOS) does not; the text layers' metrics would be NaN, so they are named."""
    paths = checks.build("llava", zoo_root)
    with pytest.raises(
        ValueError, match=r"at 2 of 4 captured layers \('model.language_model"
    ) as err:
        checks.compare(paths["base"], [paths["lora"]], pooling="first")
    assert "\n" not in str(err.value) and "--pooling mean or last" in str(err.value)
    result = checks.compare(paths["base"], [paths["lora"]], pooling="first", layers="vision")
    assert all(0 < v <= 1 for v in checks.ckas(result, 0))


def test_warnings_are_recorded_in_the_report(zoo_root, tmp_path):
    from repspace.report import write_report

    base = checks.build("gpt2", zoo_root)["base"]
    with pytest.warns(UserWarning, match="bit-identical"):
        result = checks.compare(base, [base])
    assert any("bit-identical" in w for w in result.warnings)
    out = write_report(result, tmp_path / "report")
    assert any(
        "bit-identical" in w for w in json.loads((out / "report.json").read_text())["warnings"]
    )
    assert "bit-identical" in (out / "report.html").read_text()


def test_layers_accepts_embedded():
    assert "vision_model.encoder.layers.0" in checks.run_layers("embedded")


def test_layers_accepts_every_spec_compare_accepts(zoo_root, tmp_path, capsys):
    """Folder, config.json, adapter (its recorded base or --base), a bare weights file with
    --base or --config: the same names compare selects; without an architecture, one line."""
    from repspace.cli import main

    paths = checks.build("llama", zoo_root)
    moved = tmp_path / "adapter-elsewhere"  # an adapter whose recorded base is gone: --base
    shutil.copytree(paths["lora"], moved)
    cfg = json.loads((moved / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "/nonexistent/llama"
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    weights = str(paths["full"] / "model.safetensors")
    want = checks.run_layers(paths["base"])
    for argv in (
        [str(paths["base"] / "config.json")],
        [str(paths["lora"])],
        [str(moved), "--base", str(paths["base"])],
        [weights, "--base", str(paths["base"])],
        [weights, "--config", str(paths["base"] / "config.json")],
    ):
        assert main(["layers", *argv, "--select", "blocks"]) == 0, argv
        assert capsys.readouterr().out == want, argv
    for argv, why in (([weights], "pass --base"), ([str(moved)], "does not exist on this machine")):
        assert main(["layers", *argv]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err


def test_flattened_patches_batched_per_sample(zoo_root):
    """Qwen2-VL through the API: one mapping of flattened ``pixel_values`` split per sample,
    and its vision blocks pooled one row per sample."""
    import numpy as np
    import transformers
    from PIL import Image

    from repspace.capture import capture_paired

    paths = checks.build("qwen2_vl", zoo_root)
    tok = transformers.AutoTokenizer.from_pretrained(paths["base"])
    images = transformers.Qwen2VLImageProcessor.from_pretrained(paths["base"])
    probe = _probe(5)
    pix = images(
        images=[Image.fromarray(np.asarray(im)) for im in probe.images], return_tensors="pt"
    )
    per_image = pix["image_grid_thw"].prod(-1) // images.merge_size**2
    # What Qwen2VLProcessor does: one <|image_pad|> per merged patch.
    texts = [
        f"<|vision_start|>{'<|image_pad|>' * int(k)}<|vision_end|>{t}"
        for k, t in zip(per_image, probe.texts)
    ]
    enc = tok(texts, padding=True, return_tensors="pt")
    mm_types = (enc["input_ids"] == tok.convert_tokens_to_ids("<|image_pad|>")).long()  # 1 = image
    inputs = {
        **enc,
        "mm_token_type_ids": mm_types,
        "pixel_values": pix["pixel_values"],
        "image_grid_thw": pix["image_grid_thw"],
    }
    base, lora = checks.load(paths["base"]), checks.load(paths["base"])
    from peft import PeftModel

    lora = PeftModel.from_pretrained(lora, paths["lora"])
    sink = capture_paired(base, lora, inputs, "blocks", batch_size=2, progress=False)
    assert sink.acc.n == 5
    cka = sink.acc.compute(metrics=["linear_cka"])
    assert min(r["linear_cka"] for r in cka.values()) < 1 - 1e-6
    assert any("visual" in layer for layer, _ in cka)


@pytest.fixture(scope="module")
def varied_images(tmp_path_factory):
    """An image-folder probe whose images differ in size, so anyres / image splitting give
    each sample its own number of crops (padded with all-zero crops in a batch)."""
    import numpy as np
    from PIL import Image

    folder = tmp_path_factory.mktemp("varied-probe")
    rng = np.random.default_rng(0)
    records = []
    for i, (w, h) in enumerate([(32, 32), (64, 32), (32, 64), (48, 48), (16, 40), (24, 32)] * 2):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        records.append({"image": f"{i}.png", "text": f"picture {i}: a red circle left of a square"})
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return folder


@pytest.mark.parametrize("arch", ["llava_next", "idefics3"])
def test_crops_per_sample_vary_and_pool_per_sample(arch, zoo_root, varied_images):
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import load_probe, make_batches

    paths = checks.build(arch, zoo_root)
    batch = next(
        make_batches(
            load_probe(varied_images),
            checks.load(paths["base"]),
            load_processor(str(paths["base"])),
            batch_size=6,
        )
    )
    crops = batch["pixel_values"].flatten(2).ne(0).any(-1).sum(1)
    assert len(set(crops.tolist())) > 1  # the zero-padded path is exercised
    result = checks.compare(
        paths["base"], [paths["base"], paths["lora"]], probe=str(varied_images), batch_size=5
    )
    assert checks.verdict("self", checks.ckas(result, 0)) is None
    assert checks.verdict("lora", checks.ckas(result, 1)) is None


def test_per_sample_regrouping_of_crops_and_patches():
    """The rows a vision tower saw, regrouped: sample i's crops (or patches) become its tokens."""
    from repspace.capture.tokens import align_tokens

    t, d = 3, 2
    pixels = torch.ones(2, 3, 3, 4, 4)
    pixels[1, 2] = 0  # sample 1 has two real crops, padded with a zero crop
    states = torch.arange(5 * t * d, dtype=torch.float32).reshape(5, t, d)
    batch = {"input_ids": torch.ones(2, 7, dtype=torch.long), "pixel_values": pixels}
    out, valid = align_tokens("vision_tower.layers.0", states, batch, "vision")
    assert out.shape == (2, 3 * t, d)
    assert torch.equal(out[0], states[:3].reshape(3 * t, d))
    assert torch.equal(out[1, : 2 * t], states[3:].reshape(2 * t, d))
    assert valid[0].all() and valid[1, : 2 * t].all() and not valid[1, 2 * t :].any()
    # Qwen2-VL: flattened patches, t*h*w per image
    grid = torch.tensor([[1, 2, 2], [1, 2, 4]])
    flat = torch.randn(12, d)
    batch = {
        "input_ids": torch.ones(2, 5, dtype=torch.long),
        "pixel_values": torch.randn(12, 8),
        "image_grid_thw": grid,
    }
    out, valid = align_tokens("visual.blocks.0", flat, batch, "vision")
    assert (
        out.shape == (2, 8, d)
        and torch.equal(out[0, :4], flat[:4])
        and torch.equal(out[1], flat[4:])
    )
    assert valid.sum(1).tolist() == [4, 8]
    with pytest.raises(ValueError, match="cannot tell which belong to which sample"):
        align_tokens("visual.blocks.0", torch.randn(11, d), batch, "vision")


def test_pad_token_on_a_processor_copy(zoo_root):
    """A processor whose tokenizer has no pad token (a LLaVA saved without <pad>) pads with a
    copy; the loaded processor and its tokenizer are left as they were."""
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import make_batches
    from repspace.probe.prompts import with_pad_token

    base = checks.build("llava", zoo_root)["base"]
    proc = load_processor(str(base))
    proc.tokenizer.pad_token = None
    padded = with_pad_token(proc)
    assert padded is not proc and padded.tokenizer is not proc.tokenizer
    assert (
        padded.tokenizer.pad_token == proc.tokenizer.eos_token and proc.tokenizer.pad_token is None
    )
    batch = next(make_batches(_probe(4), checks.load(base), proc))
    assert (batch["attention_mask"] == 0).any()  # it did pad
    assert batch["input_ids"].shape[0] == 4 and proc.tokenizer.pad_token is None


@pytest.mark.parametrize("arch", ["bert", "siglip"])
def test_no_attention_mask_means_fixed_length_padding(arch, zoo_root):
    """A tokenizer that returns no attention mask (SigLIP's real one): the model attends to its
    padding, so a sample's inputs must not depend on the other samples of its batch."""
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import make_batches
    from repspace.probe.prompts import tokenizer_of

    base = checks.build(arch, zoo_root)["base"]
    proc = load_processor(str(base))
    tokenizer_of(proc).model_input_names = ["input_ids"]
    model = checks.load(base)
    probe = _probe(8)
    alone = next(make_batches(probe.select([0]), model, proc, max_length=20))
    together = next(make_batches(probe, model, proc, max_length=20))
    assert "attention_mask" not in together
    assert torch.equal(alone["input_ids"][0], together["input_ids"][0])


@pytest.mark.parametrize("arch", ["gpt2", "t5", "blip2", "llava_next", "qwen2_vl"])
def test_cli_compare_writes_the_report(arch, zoo_root, tmp_path):
    """The command a user types, defaults everywhere but the sample count."""
    from repspace.cli import main

    paths = checks.build(arch, zoo_root)
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            str(paths["base"]),
            str(paths["lora"]),
            str(paths["full"] / "model.safetensors"),
            "-o",
            str(out),
            "--num-samples",
            "16",
            "--quiet",
            "--embedding",
            "pca",
        ]
    )  # UMAP: seconds of numba start-up
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["warnings"] == [] and len(report["layers"]) >= 2
    if arch == "qwen2_vl":  # the images reached the model: its vision blocks were compared
        assert any(layer.startswith("model.visual.") for layer in report["layers"]), report[
            "layers"
        ]
    cka = [r["metrics"]["linear_cka"] for r in report["results"]]
    assert all(0 < c < 1 for c in cka[:1]) and all(c == c for c in cka)  # no NaN


def test_tokenizer_that_cannot_load_names_why(zoo_root, tmp_path, monkeypatch):
    """A tokenizer class that needs a missing package (SigLIP's sentencepiece tokenizer):
    the one-line error says what is missing, not just that nothing was found.  Where the
    packages are installed (the ``test`` extra), transformers is told they are not, the way
    it checks them itself."""
    from transformers.utils import import_utils

    for backend in ("sentencepiece", "protobuf"):
        _, message = import_utils.BACKENDS_MAPPING[backend]
        monkeypatch.setitem(import_utils.BACKENDS_MAPPING, backend, (lambda: False, message))
    base = checks.build("bert", zoo_root)["base"]
    folder = tmp_path / "tok"  # a name that cannot match the error pattern itself
    shutil.copytree(base, folder)
    (folder / "tokenizer.json").unlink()
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["tokenizer_class"] = "SiglipTokenizer"
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    (folder / "spiece.model").write_bytes(b"not read")
    with pytest.raises(ValueError, match="(?i)sentencepiece|protobuf") as err:
        checks.compare(folder, [folder])
    assert "\n" not in str(err.value)


def test_chat_template_without_image_placeholder_falls_back_to_the_image_token(zoo_root):
    from repspace.capture.tokens import image_token_id
    from repspace.checkpoints.loader import load_processor
    from repspace.probe import make_batches
    from repspace.probe.prompts import prompt_mode

    base = checks.build("llava", zoo_root)["base"]
    proc, model = load_processor(str(base)), checks.load(base)
    proc.chat_template = (
        "{% for m in messages %}USER: {% for c in m['content'] %}"
        "{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
        "{% endfor %}"
    )
    import numpy as np
    from PIL import Image

    probe = _probe(2)
    image = Image.fromarray(np.asarray(probe.images[0]))
    assert prompt_mode(proc, image_token_id(model), probe.texts[0], image) == "token"
    batch = next(make_batches(probe, model, proc))
    assert ((batch["input_ids"] == image_token_id(model)).sum(1) > 0).all()
