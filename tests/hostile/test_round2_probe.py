"""Round two (issue 26), probe decoding: byte-order marks and encodings, every image mode
rendered faithfully or refused by name, decompression bombs whatever PIL's own setting, and
every decoding error naming its file (docs/security.md, promises 7 and 8)."""

import json

import numpy as np
import pytest
from PIL import Image

from repspace.cli import main
from repspace.probe import load_probe
from repspace.probe.inputs import _load_image
from tests.hostile.conftest import FAST, refused

BOM = "\ufeff"
TEXTS = [
    "a red circle is left of the blue square",
    "a small green star is above the triangle",
    "two large shapes and a yellow star",
]


def _write(path, text: str, bom: bool):
    path.write_bytes(((BOM if bom else "") + text).encode("utf-8"))
    return path


_FORMATS = {
    ".txt": lambda texts: "\n".join(texts) + "\n",
    ".jsonl": lambda texts: "".join(json.dumps({"text": t}) + "\n" for t in texts),
    ".csv": lambda texts: "text,id\n" + "".join(f"{t},{i}\n" for i, t in enumerate(texts)),
}


@pytest.mark.parametrize("suffix", sorted(_FORMATS))
def test_a_byte_order_mark_is_not_part_of_the_first_text(tmp_path, suffix):
    plain = _write(tmp_path / f"plain{suffix}", _FORMATS[suffix](TEXTS), bom=False)
    marked = _write(tmp_path / f"bom{suffix}", _FORMATS[suffix](TEXTS), bom=True)
    assert load_probe(marked).texts == load_probe(plain).texts == TEXTS
    assert load_probe(marked).sha256() == load_probe(plain).sha256()


def test_a_byte_order_mark_changes_no_number_of_compare(ws, capsys):
    from tests.compare.conftest import SENTENCES

    marked = _write(ws.root / "bom.txt", "\n".join(SENTENCES[:24]), bom=True)
    reports = {}
    for name, probe in (("plain", ws.probe), ("bom", marked)):
        capsys.readouterr()
        assert (
            main(
                [
                    "compare",
                    str(ws.base),
                    str(ws.adapter),
                    "--probe",
                    str(probe),
                    *FAST,
                    "--metrics",
                    "linear_cka,effective_rank",
                    "--no-report",
                    "--json",
                ]
            )
            == 0
        )
        reports[name] = json.loads(capsys.readouterr().out)
    assert (
        reports["bom"]["inputs"]["probe"]["sha256"] == reports["plain"]["inputs"]["probe"]["sha256"]
    )
    assert reports["bom"]["results"] == reports["plain"]["results"]


@pytest.mark.parametrize("encoding,fix", [("utf-16", "UTF-16"), ("latin-1", "UTF-8")])
def test_a_probe_in_another_encoding_is_refused_with_the_fix(ws, capsys, encoding, fix):
    probe = ws.root / "probe-other.txt"
    probe.write_bytes("a red circle caf\xe9\n".encode(encoding))
    line = refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", probe, *FAST], names=str(probe)
    )
    assert fix in line and "save it as UTF-8" in line


def test_non_utf8_captions_beside_an_image_folder_name_the_captions_file(ws, capsys):
    folder = ws.root / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "a.png")
    captions = folder / "captions.jsonl"
    captions.write_bytes('{"image": "a.png", "caption": "caf\xe9"}\n'.encode("latin-1"))
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", folder, *FAST],
        names=str(captions),
    )
    assert "save it as UTF-8" in line


def test_a_jsonl_line_with_a_5000_digit_number_names_the_file(ws, capsys):
    probe = ws.root / "probe.jsonl"
    probe.write_text('{"text": "a red circle"}\n{"text": "x", "n": ' + "9" * 5000 + "}\n")
    line = refused(
        capsys, ws.root, ["compare", ws.base, ws.adapter, "--probe", probe, *FAST], names=str(probe)
    )
    assert "line 2" in line


# -- image modes -------------------------------------------------------------------------
def _pipeline_pixels(folder):
    """Each image of probe folder ``folder`` as the capture receives it (RGB uint8)."""
    probe = load_probe(folder)
    return [np.asarray(_load_image(im)) for im in probe.images]


def test_a_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    ramp = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(folder / "ramp.png")
    assert Image.open(folder / "ramp.png").mode == "I;16"  # really 16 bits on disk
    (pixels,) = _pipeline_pixels(folder)
    expected = np.round(ramp.astype(np.float64) * 255 / 65535)
    assert pixels.shape == (32, 32, 3) and np.abs(pixels[..., 0] - expected).max() <= 1
    assert (pixels[..., 0] == pixels[..., 2]).all() and 120 < pixels.mean() < 135  # not ~255


@pytest.mark.parametrize("mode", ["LA", "RGBA", "P"])
def test_transparency_is_composited_on_white_like_transformers(tmp_path, mode):
    folder = tmp_path / "images"
    folder.mkdir()
    if mode == "P":  # palette with a transparent index (GIF / PNG tRNS)
        im = Image.new("P", (8, 8), 0)
        im.putpalette([10, 20, 30, 200, 100, 50])
        im.paste(1, (4, 0, 8, 8))
        im.save(folder / "p.png", transparency=0)
    else:
        im = Image.new(mode, (8, 8), (40, 0) if mode == "LA" else (40, 40, 40, 0))
        im.paste((40, 255) if mode == "LA" else (40, 40, 40, 255), (4, 0, 8, 8))
        im.save(folder / f"{mode}.png")
    (pixels,) = _pipeline_pixels(folder)
    from transformers.image_transforms import convert_to_rgb

    expected = convert_to_rgb(Image.open(next(folder.iterdir())), return_numpy=True)
    assert (pixels == expected).all()
    assert (pixels[:, :4] == 255).all()  # the transparent half is white, not the hidden colour
    assert (pixels[:, 4:] == (40 if mode != "P" else np.array([200, 100, 50]))).all()


def test_plain_images_stay_files_hashed_by_their_bytes(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "a.png")
    Image.new("L", (8, 8), 9).save(folder / "b.png")
    probe = load_probe(folder)
    assert all(isinstance(im, str) for im in probe.images)


def _save(kind, path):
    if kind == "F":
        Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(path)
    elif kind == "I":
        Image.fromarray(np.arange(64, dtype=np.int32).reshape(8, 8) * 1000).save(path)
    else:
        Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)
    assert Image.open(path).mode == kind


@pytest.mark.parametrize(
    "kind,name", [("F", "float.tif"), ("I", "int32.tif"), ("CMYK", "print.jpg")]
)
def test_a_mode_without_a_faithful_rgb_rendering_is_refused_by_name(ws, capsys, kind, name):
    _save(kind, ws.root / name)
    probe = ws.root / "probe.jsonl"
    probe.write_text(
        "".join(
            json.dumps({"text": t, "image": img}) + "\n"
            for t, img in ((TEXTS[0], name), (TEXTS[1], name))
        )
    )
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", probe, *FAST],
        names=str(ws.root / name),
    )
    assert f"mode {kind}" in line


def test_a_decompression_bomb_is_refused_even_with_pils_limit_lifted(ws, capsys, monkeypatch):
    from PIL import Image as PILImage

    from tests.hostile.test_malformed_files import _png

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", None)  # a program that turned it off
    (ws.root / "bomb.png").write_bytes(_png(30000, 30000))
    probe = ws.root / "probe.jsonl"
    probe.write_text(json.dumps({"text": TEXTS[0], "image": "bomb.png"}) + "\n")
    line = refused(
        capsys,
        ws.root,
        ["compare", ws.base, ws.adapter, "--probe", probe, *FAST],
        names=str(ws.root / "bomb.png"),
    )
    assert "30000x30000" in line


def test_training_images_are_converted_and_checked_by_the_same_rules(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from repspace.data import load_image
    from tests.hostile.test_malformed_files import _png

    ramp = np.full((6, 6), 32896, dtype=np.uint16)  # half of 65535
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert (load_image(tmp_path / "g16.png") == 128).all()
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", None)
    (tmp_path / "bomb.png").write_bytes(_png(30000, 30000))
    with pytest.raises(ValueError, match="bomb.png: 30000x30000"):
        load_image(tmp_path / "bomb.png")
    _save("CMYK", tmp_path / "print.jpg")
    with pytest.raises(ValueError, match=r"print\.jpg: mode CMYK"):
        load_image(tmp_path / "print.jpg")
