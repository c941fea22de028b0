"""Fixtures and the one assertion of the hostile-input suite (docs/security.md).

Every hostile case runs the real CLI entry point (``repspace.cli.main``) and goes through
:func:`refused`, which asserts the promises: exit code 2, exactly one line on stderr that
names the offending input, no traceback, no marker file written by a payload, nothing new
or half-written at the output location, and every pre-existing file untouched (bytes and
mode).  Tiny checkpoints are built once per session.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from repspace.cli import main
from tests.compare.conftest import SENTENCES, tiny_bert, word_tokenizer

# Where every payload in this suite tries to write: its existence means code ran.
MARKER_NAME = "PWNED"


@dataclass
class World:
    root: Path  # session folder holding the pristine fixtures
    base: Path  # tiny BERT model folder (config, safetensors, tokenizer)
    adapter: Path  # PEFT LoRA adapter folder onto ``base``
    probe: Path  # text probe
    small: Path  # a 2-layer BERT (layer names differ from ``base``)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    root = tmp_path_factory.mktemp("hostile-world")
    base = root / "tiny-bert"
    tiny_bert().save_pretrained(base)
    word_tokenizer().save_pretrained(base)
    torch.manual_seed(1)
    adapter = root / "lora"
    model = get_peft_model(
        AutoModel.from_pretrained(base, local_files_only=True),
        LoraConfig(r=4, lora_alpha=16, target_modules=["query", "value"], init_lora_weights=False),
    )
    model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base)
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    small = root / "tiny-bert-2"
    from transformers import BertConfig, BertModel

    torch.manual_seed(2)
    BertModel(
        BertConfig(
            vocab_size=len(word_tokenizer()),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
        )
    ).save_pretrained(small)
    word_tokenizer().save_pretrained(small)
    probe = root / "probe.txt"
    probe.write_text("\n".join(SENTENCES[:24]))
    return World(root, base, adapter, probe, small)


@pytest.fixture
def ws(world, tmp_path, monkeypatch):
    """A per-test workspace: copies of the fixtures (cases may vandalise them), cwd inside."""
    for name in ("tiny-bert", "lora", "tiny-bert-2", "probe.txt"):
        src = world.root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    cfg = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "tiny-bert")
    (tmp_path / "lora" / "adapter_config.json").write_text(json.dumps(cfg))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return World(
        tmp_path,
        tmp_path / "tiny-bert",
        tmp_path / "lora",
        tmp_path / "probe.txt",
        tmp_path / "tiny-bert-2",
    )


FAST = [
    "--embedding",
    "pca",
    "--quiet",
    "--sample-rows",
    "32",
    "--num-samples",
    "24",
    "--batch-size",
    "8",
]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (symlinks not followed): kind, mode, bytes."""
    out = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_dir():
                out[str(p)] = ("dir", st.st_mode)
            elif p.is_file():
                out[str(p)] = ("file", st.st_mode, p.read_bytes())
            else:  # a pipe or device: reading it would block
                out[str(p)] = ("special", st.st_mode)
    return out


def marker_paths(root: Path) -> list[Path]:
    return [root / MARKER_NAME, Path.cwd() / MARKER_NAME]


def refused(
    capsys, root: Path, args: list, *, names: str, out: Path | None = None, code: int = 2
) -> str:
    """Run ``repspace *args``; assert every promise of a refused hostile input (see module
    docstring); returns the error line."""
    capsys.readouterr()
    before = snapshot(root)
    out_existed = out is not None and os.path.lexists(out)
    rc = main([str(a) for a in args])
    stdout, err = capsys.readouterr()
    lines = err.splitlines()
    assert rc == code, f"exit {rc}, stderr: {err!r}, stdout: {stdout[-500:]!r}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    assert "Traceback" not in err and "Traceback" not in stdout
    assert lines[0].startswith("repspace"), lines[0]
    assert names in lines[0], f"{names!r} not named in: {lines[0]!r}"
    for m in marker_paths(root):
        assert not m.exists(), f"a payload ran: {m} exists"
    after = snapshot(root)
    new = sorted(set(after) - set(before))
    assert not new, f"new entries after a refused run: {new}"
    changed = sorted(k for k in before if after.get(k) != before[k])
    assert not changed, f"pre-existing entries changed: {changed}"
    if out is not None and not out_existed:
        assert not os.path.lexists(out), f"{out} was created"
    return lines[0]


def payload_pickle(path: Path, marker: Path, how: str = "os.system") -> Path:
    """A pickle that runs code when unpickled (it would create ``marker``)."""
    import pickle

    class Payload:
        def __reduce__(self):
            if how == "os.system":
                return (os.system, (f"touch {marker}",))
            if how == "exec":
                return (exec, (f"open({str(marker)!r}, 'w').write('x')",))
            return (eval, (f"open({str(marker)!r}, 'w').write('x')",))

    with open(path, "wb") as f:
        pickle.dump({"weights": Payload()}, f, protocol=2)
    return path


def torch_save_payload(path: Path, marker: Path) -> Path:
    """The payload inside torch.save's zip format, next to real tensors."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save(
        {"encoder.layer.0.attention.self.query.weight": torch.zeros(32, 32), "evil": Payload()},
        path,
    )
    return path


def add_auto_map(folder: Path, file: str = "config.json", key: str = "auto_map") -> None:
    """Make ``folder`` ask transformers to import its own ``evil.py`` (which writes the marker)."""
    cfg_path = folder / file
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    cfg[key] = {
        "AutoConfig": "evil.EvilConfig",
        "AutoModel": "evil.EvilModel",
        "AutoTokenizer": ["evil.EvilTokenizer", None],
        "AutoProcessor": "evil.EvilProcessor",
    }
    cfg_path.write_text(json.dumps(cfg))
    (folder / "evil.py").write_text(
        f"open({str(folder.parent / MARKER_NAME)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n"
    )
