"""Per-segment metrics (issue 19.4) against an independent computation: plain forward hooks
on the blocks, masks built by hand from input_ids / attention_mask, numpy CKA."""

import copy
import math

import numpy as np
import pytest
import torch

peft = pytest.importorskip("peft")

from repspace.checkpoints import LoadedCheckpoint  # noqa: E402
from repspace.compare.engine import compare_models  # noqa: E402
from repspace.compare.segments import split_segments  # noqa: E402
from tests.tiny_models import IMAGE_TOKEN, tiny_inputs, tiny_model  # noqa: E402


def _batches(arch, k=3, n=4):
    out = []
    for seed in range(k):
        x = tiny_inputs(arch, n=n, seed=seed)
        x.pop("labels")
        out.append(x)
    return out


def _hooked(model, modules, batches):
    """{name: [(b, t, d) per batch]} from forward hooks on ``modules`` (name -> module)."""
    got = {name: [] for name in modules}
    hooks = [
        m.register_forward_hook(
            lambda mod, a, out, name=name: got[name].append(
                (out[0] if isinstance(out, tuple) else out).detach().double()
            )
        )
        for name, m in modules.items()
    ]
    with torch.no_grad():
        for x in batches:
            model(**x)
    for h in hooks:
        h.remove()
    return got


def _cka(x, y):
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _erank(x):
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    s = s[s > s.max() * max(x.shape) * np.finfo(np.float64).eps]
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def _means(states, masks):
    rows = []
    for h, m in zip(states, masks):
        for i in range(h.shape[0]):
            if m[i].any():
                rows.append(h[i][m[i]].mean(0).numpy())
    return np.array(rows)


def _lora_llava():
    torch.manual_seed(0)
    base = tiny_model("llava")
    tuned = peft.get_peft_model(
        copy.deepcopy(base),
        peft.LoraConfig(r=2, lora_alpha=4, target_modules=r".*language_model.*\.(q_proj|v_proj)"),
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in tuned.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return base.eval(), tuned.eval()


def test_llava_image_and_text_segments_match_hand_masks(tmp_path):
    base, tuned = _lora_llava()
    batches = _batches("llava")
    res = compare_models(
        LoadedCheckpoint("b", "base", "hf", base),
        [LoadedCheckpoint("t", "lora", "peft", tuned)],
        lambda: iter(batches),
        progress=False,
        embedding="none",
        segments=True,
        metrics=["linear_cka"],
    )
    seg = res.analyses["segments"]["lora"]
    assert res.settings["segments"] is True
    vision = {
        f"model.vision_tower.encoder.layers.{i}": base.model.vision_tower.encoder.layers[i]
        for i in range(2)
    }
    text = {
        f"model.language_model.layers.{i}": base.model.language_model.layers[i] for i in range(2)
    }
    tvision = {
        k: tuned.base_model.model.model.vision_tower.encoder.layers[int(k[-1])] for k in vision
    }
    ttext = {k: tuned.base_model.model.model.language_model.layers[int(k[-1])] for k in text}
    hb = _hooked(base, {**vision, **text}, batches)
    ht = _hooked(tuned, {**tvision, **ttext}, batches)
    for name in vision:  # every token of the vision tower (CLS included) is an image token
        masks = [torch.ones(h.shape[:2], dtype=torch.bool) for h in hb[name]]
        x, y = _means(hb[name], masks), _means(ht[name], masks)
        assert set(seg[name]) == {"image"}
        assert seg[name]["image"]["n"] == 12
        assert seg[name]["image"]["linear_cka"] == pytest.approx(_cka(x, y), rel=1e-9)
        assert seg[name]["image"]["linear_cka"] == pytest.approx(1.0, abs=1e-12)  # LoRA is on text
    for name in text:
        masks_img = [(x["attention_mask"] == 1) & (x["input_ids"] == IMAGE_TOKEN) for x in batches]
        masks_txt = [(x["attention_mask"] == 1) & (x["input_ids"] != IMAGE_TOKEN) for x in batches]
        assert set(seg[name]) == {"image", "text"}
        for key, masks in (("image", masks_img), ("text", masks_txt)):
            x, y = _means(hb[name], masks), _means(ht[name], masks)
            m = seg[name][key]
            assert m["n"] == 12
            assert m["linear_cka"] == pytest.approx(_cka(x, y), rel=1e-9)
            assert m["linear_cka"] < 1 - 1e-4
            assert m["effective_rank_base"] == pytest.approx(_erank(x), rel=1e-9)
            assert m["effective_rank_tuned"] == pytest.approx(_erank(y), rel=1e-9)
            want = np.mean(np.linalg.norm(y - x, axis=1) / np.linalg.norm(x, axis=1))
            assert m["relative_shift_mean"] == pytest.approx(want, rel=1e-9)
    # the pooled comparison mixes nothing in: text pooling ("auto") equals the text segment
    for name in text:
        assert res.metrics["lora"][name]["linear_cka"] == pytest.approx(
            seg[name]["text"]["linear_cka"], rel=1e-6
        )
    from repspace.report import write_report

    out = write_report(res, tmp_path / "report")
    html = (out / "report.html").read_text()
    assert "Per segment: image and text tokens" in html and "analysis_segments" in html
    assert (out / "plots" / "analysis_segments.png").is_file()


def test_prompt_tuning_virtual_tokens_against_hand_statistics():
    torch.manual_seed(0)
    base = tiny_model("bert")
    tuned = peft.get_peft_model(
        copy.deepcopy(base), peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=3)
    ).eval()
    batches = _batches("bert", k=3, n=4)
    res = compare_models(
        LoadedCheckpoint("b", "base", "hf", base),
        [LoadedCheckpoint("t", "prompt", "peft", tuned)],
        lambda: iter(batches),
        progress=False,
        embedding="none",
        segments=True,
        metrics=["linear_cka"],
    )
    seg = res.analyses["segments"]["prompt"]
    layers = {f"bert.encoder.layer.{i}": i for i in range(2)}
    hb = _hooked(base, {k: base.bert.encoder.layer[i] for k, i in layers.items()}, batches)
    ht = _hooked(
        tuned, {k: tuned.base_model.bert.encoder.layer[i] for k, i in layers.items()}, batches
    )
    masks = [x["attention_mask"] == 1 for x in batches]
    for name in layers:
        assert set(seg[name]) == {"text", "virtual"}
        x = _means(hb[name], masks)
        y = _means([h[:, 3:] for h in ht[name]], masks)
        assert seg[name]["text"]["linear_cka"] == pytest.approx(_cka(x, y), rel=1e-9)
        v = np.concatenate([h[:, :3].numpy() for h in ht[name]])  # (12, 3, d)
        rows = v.reshape(-1, v.shape[-1])
        txt = np.concatenate([h[:, 3:][m].numpy() for h, m in zip(ht[name], masks)])
        got = seg[name]["virtual"]
        assert got["virtual_tokens"] == 3 and got["virtual_samples"] == 12
        # 36 rows > 32 columns: repspace's spectrum takes the float64 scatter-matrix path,
        # whose small singular values carry ~1e-8 relative error (numpy: SVD of the rows)
        assert got["virtual_effective_rank"] == pytest.approx(_erank(rows), rel=1e-6)
        assert got["virtual_norm_ratio"] == pytest.approx(
            np.linalg.norm(rows, axis=1).mean() / np.linalg.norm(txt, axis=1).mean(), rel=1e-9
        )
        within = ((v - v.mean(0)) ** 2).sum()
        total = ((rows - rows.mean(0)) ** 2).sum()
        assert got["virtual_sample_share"] == pytest.approx(within / total, rel=1e-9)
        assert 0 < got["virtual_sample_share"] < 1  # BERT: the input reshapes the prompt


def test_split_segments_without_placeholders_is_all_text():
    h = torch.randn(2, 5, 4)
    batch = {
        "input_ids": torch.ones(2, 5, dtype=torch.long),
        "attention_mask": torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]),
    }
    parts = split_segments("l", h, batch, "text", 0, image_token=None)
    assert set(parts) == {"text"}
    assert torch.equal(parts["text"][1], batch["attention_mask"].bool())
    parts = split_segments("l", torch.randn(2, 7, 4), batch, "text", 2, image_token=None)
    assert set(parts) == {"text", "virtual"} and parts["virtual"][0].shape == (2, 2, 4)
    assert not math.isnan(float(parts["text"][0].sum()))
