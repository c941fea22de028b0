"""Make the gallery's study figures the demo cannot draw (docs/gallery.md): budget, data size
and the seed-to-seed baseline, from hand-made cell records (synthetic numbers).

    python docs/gallery/make_synthetic_gallery.py /tmp/sg      # a few seconds

The records are the test suite's (``tests/study/test_figures.py``'s grid: LoRA at two ranks
and two data fractions, prefix-tuning and PT-LoRA, two seeds each; the seed-baseline rows
four methods over a vision and a text tower). The figures land in ``/tmp/sg/`` and are
copied to ``/tmp/sg/study_*_synthetic.png`` (copy those into docs/gallery/). Run it from a
source checkout with repspace installed (it imports ``tests/``).
"""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def seed_baseline_rows() -> list[dict]:
    layers = [f"vision_model.encoder.layers.{i}" for i in range(3)] + [
        f"text_decoder.bert.encoder.layer.{i}" for i in range(3)
    ]
    spread = {"full": 6.0, "lora": 2.0, "prefix": 0.6, "pt_lora": 1.5}
    return [
        {
            "task": "vqa",
            "method": method,
            "budget": None,
            "budget_field": None,
            "data_fraction": 1.0,
            "layer": layer,
            "moved": 0.004 * scale * (j + 1),
            "seed_variation": 0.003 * (j + 1),
        }
        for method, scale in spread.items()
        for j, layer in enumerate(layers)
    ]


def main(out: Path) -> None:
    from repspace.study.figures import make_figures
    from repspace.study.results import build_tables
    from repspace.study.seed_baseline import plot_seed_baseline

    from tests.study.test_figures import grid

    out.mkdir(parents=True, exist_ok=True)
    make_figures(build_tables(grid()), out)
    plot_seed_baseline(seed_baseline_rows(), out / "seed_baseline")
    for name in ("budget", "data_fraction", "seed_baseline"):
        shutil.copyfile(out / f"{name}.png", out / f"study_{name}_synthetic.png")
        print(out / f"study_{name}_synthetic.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sg"))
