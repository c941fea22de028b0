"""report.html as a reader sees it: rendered by headless Chromium (Debian's ``chromium``).

The report is a real one, written by ``repspace compare`` on tiny checkpoints (a BERT, a
LoRA adapter trained on it, a perturbed full fine-tune) with the analyses that add figures.
Asserted: no console error, exception or failed load; every image decoded (naturalWidth > 0)
and shown; one caption per figure; no horizontal overflow; a screenshot that is not blank.

Without Chromium the tests skip with a reason — except under CI (``CI=true``), where they
fail: ``.ci/run`` installs the package, and a silently skipped browser test would hide it.
"""

import io
import json
import os
import re

import numpy as np
import pytest
import torch

from tests.report.browser import Browser, find_chromium

pytest.importorskip("transformers")
pytest.importorskip("peft")
# peft calls a transformers API deprecated in 5.x while the tiny LoRA is trained
pytestmark = pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")


def _chromium() -> str:
    exe = find_chromium()
    if exe is None:
        reason = (
            "no Chromium on PATH (Debian: apt-get install chromium; or set "
            "REPSPACE_CHROMIUM): the rendered-report test needs it"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}; .ci/run installs it before the tests")
        pytest.skip(reason)
    return exe


@pytest.fixture(scope="module")
def browser():
    with Browser(_chromium()) as b:
        yield b


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory):
    """A report folder written by the CLI: base + LoRA adapter + full fine-tune, with the
    segment, adapter-effect and merge-fidelity analyses (8 figures)."""
    from safetensors.torch import save_file

    from repspace.cli import main
    from tests.compare.conftest import SENTENCES, tiny_bert, train_lora, word_tokenizer

    d = tmp_path_factory.mktemp("browser")
    base = d / "tiny-bert"
    tiny_bert().save_pretrained(base)
    word_tokenizer().save_pretrained(base)
    probe = d / "probe.txt"
    probe.write_text("\n".join(SENTENCES))
    train_lora(base, d / "lora-r4", steps=10)
    torch.manual_seed(1)
    full = {
        k: (v + 0.05 * torch.randn_like(v)).contiguous()
        for k, v in tiny_bert().state_dict().items()
    }
    save_file(full, d / "full-ft.safetensors")
    out = d / "report"
    rc = main(
        [
            str(a)
            for a in (
                "compare",
                base,
                d / "lora-r4",
                d / "full-ft.safetensors",
                "--probe",
                probe,
                "-o",
                out,
                "--name",
                "base=tiny-bert",
                "--embedding",
                "pca",
                "--quiet",
                "--sample-rows",
                "64",
                "--segments",
                "--adapter-effect",
                "--merge-dtype",
                "bfloat16",
            )
        ]
    )
    assert rc == 0
    return out


def _not_blank(png: bytes) -> tuple[float, int]:
    """(share of non-white pixels, number of distinct colours) of a screenshot."""
    from matplotlib.image import imread

    img = imread(io.BytesIO(png), format="png")[..., :3]
    ink = float((img.min(axis=-1) < 0.95).mean())
    colours = len(np.unique((img.reshape(-1, 3) * 255).astype(np.uint8), axis=0))
    return ink, colours


def test_report_html_renders_cleanly_in_chromium(browser, cli_report):
    page = browser.render(cli_report / "report.html")
    assert page.console_errors == [], page.console_errors
    pngs = sorted(p.name for p in (cli_report / "plots").glob("*.png"))
    assert len(pngs) >= 8 and len(page.images) == len(pngs) == page.figures
    assert page.broken_images == [], page.broken_images
    assert all(i["shown"] > 100 for i in page.images), page.images  # laid out, not collapsed
    assert len(page.captions) == page.figures and all(
        re.match(r"Figure \d+\. \S", c) for c in page.captions
    ), page.captions
    # report.json has the caption of every figure file, the text shown under the image
    captions = json.loads((cli_report / "report.json").read_text())["captions"]
    shown = [re.sub(r"^Figure \d+\. ", "", c) for c in page.captions]
    assert sorted(shown) == sorted(t for f, t in captions.items() if f.endswith(".png"))
    # not blank: a title, the summary, the tables and the figures are on the page
    assert page.title.startswith("repspace report: lora-r4, full-ft vs tiny-bert")
    for words in (
        "Setup",
        "Key numbers",
        "Per-layer metrics",
        "Figures",
        "lora-r4",
        "full-ft",
        "n = 72",
    ):
        assert words in page.text, words
    assert page.tables >= 3 and page.height > 3000
    assert page.width <= page.viewport, "the page scrolls sideways (a table or figure too wide)"
    ink, colours = _not_blank(page.screenshot)
    assert ink > 0.02 and colours > 20, (ink, colours)


def test_the_checker_sees_what_breaks_a_page(browser, tmp_path):
    """The same checks on a page with a missing image, a console error and a late exception:
    each is reported (so a clean report above is clean, not unobserved)."""
    pixel = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    page = tmp_path / "bad.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><title>bad</title></head><body><p>text</p>"
        f'<img alt="gone" src="missing.png"><img alt="ok" src="data:image/png;base64,{pixel}">'
        '<script>console.error("boom"); setTimeout(() => { throw new Error("late"); }, 10)'
        "</script></body></html>"
    )
    seen = browser.render(page)
    assert [i["alt"] for i in seen.broken_images] == ["gone"]
    joined = "\n".join(seen.console_errors)
    assert "missing.png" in joined and "boom" in joined and "late" in joined, seen.console_errors
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    ink, colours = _not_blank(browser.render(blank).screenshot)
    assert ink < 0.001 and colours <= 2
