"""What the commands write by default, run inside the checkout, is not offered to git."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        "repspace-demo/summary.md",
        "repspace-demo-quick/summary.md",
        "repspace-report/report.html",
        "runs/lora-vqa-s0/state/x",
    ],
)
def test_default_outputs_are_ignored(path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert proc.returncode == 0, f"{path} is not in .gitignore"
