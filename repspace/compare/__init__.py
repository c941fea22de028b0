"""`repspace compare`: per-layer distortion of tuned checkpoints relative to the base."""
from repspace.compare.api import CompareConfig, compare
from repspace.compare.engine import SAMPLE_METRICS, CompareOptions, compare_models, embed_2d

__all__ = ["SAMPLE_METRICS", "CompareConfig", "CompareOptions", "compare", "compare_models",
           "embed_2d"]
