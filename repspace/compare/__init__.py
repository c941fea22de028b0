"""`repspace compare`: per-layer distortion of tuned checkpoints relative to the base."""
from repspace.compare.api import compare
from repspace.compare.engine import SAMPLE_METRICS, compare_models, embed_2d

__all__ = ["SAMPLE_METRICS", "compare", "compare_models", "embed_2d"]
