"""Where a module call carries its KV cache, across transformers releases.

transformers <= 5.23 passes the cache as ``past_key_values``; 5.24 renamed it ``cache`` (the
old name is still accepted by a deprecation shim until 5.40).  Methods that wrap an attention
``forward`` or intercept a model call must find the cache under either name -- reading only
one of them silently drops the cache on the other releases, and cached generation then
attends to the newest token only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CACHE_KWARGS", "pop_cache", "get_cache", "has_cached_tokens"]

CACHE_KWARGS = ("cache", "past_key_values")


def get_cache(kwargs: dict) -> Any:
    """The cache object in a call's keyword arguments (either name), or ``None``."""
    for name in CACHE_KWARGS:
        if kwargs.get(name) is not None:
            return kwargs[name]
    return None


def pop_cache(kwargs: dict) -> Any:
    """Remove both cache names from ``kwargs`` and return the cache (or ``None``).

    Raises ``ValueError`` when both names carry different objects (an ambiguous call)."""
    found = [kwargs.pop(name) for name in CACHE_KWARGS if name in kwargs]
    found = [c for c in found if c is not None]
    if len(found) == 2 and found[0] is not found[1]:
        raise ValueError("got both cache= and past_key_values= with different caches; pass one")
    return found[0] if found else None


def has_cached_tokens(cache: Any) -> bool:
    """Whether ``cache`` already holds keys (a decode step rather than the prefill)."""
    if cache is None:
        return False
    length = getattr(cache, "get_seq_length", None)
    return bool(length is not None and length() > 0)
