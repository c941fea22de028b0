"""Make the gallery's weight-space, layer-matching and segments figures (docs/gallery.md).

    python docs/gallery/make_analysis_gallery.py /tmp/ag          # about a minute on a CPU

builds three sets of tiny models offline (the test suite's builders, fixed seeds), saves each
with ``save_pretrained`` under ``/tmp/ag/models`` and runs the real CLI on them:

- ``--weight-space --adapter-effect --merge-dtype bfloat16,float16``: a 3-block tiny BERT, a
  LoRA adapter (r = 4 on query / value) trained 30 steps on a toy sentence task
  (``tests/compare/conftest.py``) and a stand-in for full fine-tuning (every weight moved by
  Gaussian noise, so ΔW is full-rank);
- ``--match-layers``: a 4-block tiny LLaMA and its LLaMA-Pro-style expansion to 6 blocks
  (copies of blocks 1 and 3 with near-zero output projections,
  ``tests/metrics/test_layer_matching.py``): the depths differ, so only matched pairs compare;
- ``--segments``: a tiny LLaVA (CLIP vision tower + LLaMA, ``tests/compat/zoo.py``) and a LoRA
  adapter on its language model's q/v projections with random B (an untrained-but-nonzero
  adapter), on the builtin image+text probe.

Each command is printed before it runs; the reports land in ``/tmp/ag/<name>/`` and the figures
are copied to ``/tmp/ag/compare_analysis_*.png`` (copy those into docs/gallery/).
It imports the builders from the repository's ``tests/`` (found from this file's path), so
it runs from a source checkout with repspace installed (``pip install -e .``).
"""

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FAST = ["--embedding", "none", "--quiet"]


def weight_space_models(models: Path) -> tuple[Path, Path]:
    from tests.compare.conftest import tiny_bert, train_lora, word_tokenizer

    base = models / "tiny-bert"
    tiny_bert().save_pretrained(base)
    word_tokenizer().save_pretrained(base)
    lora = models / "tiny-bert-lora-r4"
    train_lora(base, lora)
    return base, lora


def layer_matching_models(models: Path) -> tuple[Path, Path]:
    from tests.compare.conftest import word_tokenizer
    from tests.metrics.test_layer_matching import expanded_llama

    base, tuned = expanded_llama()
    tok = word_tokenizer()
    paths = models / "llama4", models / "llama-pro6"
    for model, path in zip((base, tuned), paths):
        model.save_pretrained(path)
        tok.save_pretrained(path)
    return paths


def segments_models(models: Path) -> tuple[Path, Path]:
    import peft
    import torch
    from transformers import LlavaForConditionalGeneration

    from tests.compat import zoo

    base = zoo.save("llava", models / "tiny-llava")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(base, local_files_only=True)
    tuned = peft.get_peft_model(
        model,
        peft.LoraConfig(r=2, lora_alpha=4, target_modules=r".*language_model.*\.(q_proj|v_proj)"),
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    lora = models / "tiny-llava-lora"
    tuned.save_pretrained(lora)
    cfg = json.loads((lora / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (lora / "adapter_config.json").write_text(json.dumps(cfg))
    return base, lora


def full_finetune(models: Path, base: Path) -> Path:
    """A stand-in for full fine-tuning: every weight of the tiny BERT moved by Gaussian noise
    (5 % of a unit), so ΔW is full-rank where LoRA's is rank 4 (as in
    ``tests/report/test_report_browser.py``)."""
    import torch
    from safetensors.torch import save_file

    from tests.compare.conftest import tiny_bert

    torch.manual_seed(1)
    state = {
        k: (v + 0.05 * torch.randn_like(v)).contiguous()
        for k, v in tiny_bert().state_dict().items()
    }
    path = models / "tiny-bert-full-ft.safetensors"
    save_file(state, path)
    return path


def compare(out: Path, base: Path, tuned, *args) -> Path:
    tuned = [tuned] if isinstance(tuned, Path) else list(tuned)
    cmd = [
        sys.executable,
        "-m",
        "repspace",
        "compare",
        str(base),
        *map(str, tuned),
        "-o",
        str(out),
        "--overwrite",
        *FAST,
        *map(str, args),
    ]
    print("$", shlex.join(["python", *cmd[1:]]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out


def main(folder: str) -> None:
    folder = Path(folder)
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    from tests.compare.conftest import SENTENCES

    probe = folder / "sentences.txt"
    probe.write_text("\n".join(SENTENCES))
    base, lora = weight_space_models(models)
    weights = compare(
        folder / "weight_space",
        base,
        [lora, full_finetune(models, base)],
        "--probe",
        probe,
        "--weight-space",
        "--adapter-effect",
        "--merge-dtype",
        "bfloat16,float16",
        "--name",
        "base=tiny-BERT",
        "--name",
        "tuned1=lora",
        "--name",
        "tuned2=full",
    )
    runs = {
        "analysis_weight_space": weights,
        "analysis_adapter_effect": weights,
        "analysis_merge_fidelity": weights,
        "analysis_layer_matching": compare(
            folder / "layer_matching",
            *layer_matching_models(models),
            "--probe",
            probe,
            "--match-layers",
            "--name",
            "base=llama4",
            "--name",
            "tuned1=llama-pro6",
        ),
        "analysis_segments": compare(
            folder / "segments",
            *segments_models(models),
            "--num-samples",
            64,
            "--segments",
            "--name",
            "base=tiny-LLaVA",
            "--name",
            "tuned1=lora",
        ),
    }
    for fig, report in runs.items():
        png = report / "plots" / f"{fig}.png"
        shutil.copy(png, folder / f"compare_{fig}.png")
        caption = json.loads((report / "report.json").read_text())["captions"][f"plots/{fig}.png"]
        print(f"{folder / f'compare_{fig}.png'}: {caption}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/analysis_gallery")
