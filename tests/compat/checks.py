"""The compatibility checks, shared by the test suite and the docs table (``python -m tests.compat.table``).

For one architecture of :mod:`tests.compat.zoo`, saved in ``root/<name>/``:

- ``layers``: ``repspace layers`` lists it and its ``blocks`` preset is not empty;
- ``self``: base vs. the same folder gives linear CKA 1 at every layer;
- ``lora``: a non-identity LoRA adapter (peft ``save_pretrained``) gives CKA < 1 somewhere;
- ``full_folder`` / ``full_file``: a full fine-tune (every weight perturbed) saved with
  ``save_pretrained``, as its folder and as its single ``model.safetensors`` file.

Every compare uses the default probe (built-in images + captions, default layers,
pooling and ``--max-length``); only the number of samples is small.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path

import torch
import transformers

from tests.compat import zoo

CHECKS = ("layers", "self", "lora", "full_folder", "full_file")
NUM_SAMPLES = 32  # one default batch
# LoRA targets: the attention projections under the names the architectures use.
LORA_TARGETS = ["q_proj", "v_proj", "query", "value", "q", "v", "c_attn", "qkv_proj", "qkv"]


def load(folder: Path):
    cfg = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    cls = getattr(transformers, cfg.architectures[0])
    return cls.from_pretrained(folder, local_files_only=True).eval()


def save_lora(base: Path, out: Path) -> Path:
    """A LoRA adapter with random (non-zero) B on the attention projections."""
    from peft import LoraConfig, get_peft_model

    model = load(base)
    names = {
        n.rsplit(".", 1)[-1]
        for n, m in model.named_modules()
        if isinstance(m, (torch.nn.Linear, transformers.pytorch_utils.Conv1D))
    }
    targets = [t for t in LORA_TARGETS if t in names]
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPT-2's Conv1D fan_in_fan_out notice
        peft_model = get_peft_model(
            model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
        )
    peft_model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def save_full(base: Path, out: Path, scale: float = 0.1) -> Path:
    """A full fine-tune stand-in: every floating weight moved by ``scale`` × its std, saved with
    ``save_pretrained`` next to a copy of the base's tokenizer/processor files."""
    model = load(base)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=g) * scale * (p.std() + 1e-3))
    model.save_pretrained(out)
    for f in base.iterdir():
        if f.suffix in (".json", ".jinja", ".txt") and f.name not in (
            "config.json",
            "generation_config.json",
        ):
            shutil.copy(f, out / f.name)
    return out


def build(name: str, root: Path) -> dict[str, Path]:
    """Base, LoRA and full fine-tune folders of ``name`` under ``root`` (built once)."""
    base = root / name
    paths = {"base": base, "lora": root / f"{name}-lora", "full": root / f"{name}-full"}
    if not (base / "config.json").is_file():
        zoo.save(name, base)
    if not (paths["lora"] / "adapter_config.json").is_file():
        save_lora(base, paths["lora"])
    if not (paths["full"] / "config.json").is_file():
        save_full(base, paths["full"])
    return paths


def run_layers(folder: Path) -> str:
    from repspace.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["layers", str(folder), "--select", "blocks"])
    if code != 0:
        raise RuntimeError(f"repspace layers exited {code}")
    return out.getvalue()


def compare(base: Path, tuned: list, **kw):
    from repspace.compare.api import compare as run

    kw = {"num_samples": NUM_SAMPLES, "progress": False, "embedding": "none", **kw}
    return run(str(base), [str(t) for t in tuned], **kw)


def ckas(result, index: int) -> list[float]:
    rows = result.metrics[result.tuned[index].name]
    return [rows[layer]["linear_cka"] for layer in result.layers]


def verdict(check: str, values: list[float]) -> str | None:
    """None when the per-layer CKAs ``values`` are right for ``check``, else why not."""
    if not values:
        return "no layers compared"
    if check == "self":
        bad = [v for v in values if not abs(v - 1) < 1e-6]
        return None if not bad else f"self-compare CKA {bad[:3]} != 1"
    return (
        None if min(values) < 1 - 1e-6 else f"CKA {min(values):.6f} at every layer: no change seen"
    )


def verdicts(result) -> dict[str, str | None]:
    """Per tuned checkpoint, in the order of ``CHECKS[1:]``."""
    return {check: verdict(check, ckas(result, i)) for i, check in enumerate(CHECKS[1:])}


def run_checks(name: str, root: Path) -> dict[str, str | None]:
    """``{check: None (passed) or the one-line reason it failed}`` for one architecture."""
    paths = build(name, root)
    out: dict[str, str | None] = {}
    try:
        out["layers"] = None if run_layers(paths["base"]).strip() else "no blocks listed"
    except Exception as exc:  # noqa: BLE001 - the table records any failure
        out["layers"] = _reason(exc)
    tuned = [paths["base"], paths["lora"], paths["full"], paths["full"] / "model.safetensors"]
    with warnings.catch_warnings():
        # The self-compare is bit-identical on purpose.
        warnings.filterwarnings("ignore", message=".*bit-identical to the base model.*")
        _compare_all(paths, tuned, out)
    return out


def _compare_all(paths: dict[str, Path], tuned: list[Path], out: dict) -> None:
    try:
        out.update(verdicts(compare(paths["base"], tuned)))
    except Exception as exc:  # noqa: BLE001 - attribute it: one compare per check
        for check, t in zip(CHECKS[1:], tuned):
            try:
                out[check] = verdict(check, ckas(compare(paths["base"], [t]), 0))
            except Exception as one:  # noqa: BLE001
                out[check] = _reason(one)
        if all(v is None for v in out.values()):
            out["self"] = _reason(exc)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:600]}"
