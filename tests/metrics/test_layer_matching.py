"""Monotone layer matching: against a brute-force search, properties, and a LLaMA-Pro-style
expanded model whose inserted blocks must be matched to the block they follow."""

import copy
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from repspace.metrics.layer_matching import match_layers


def brute_force(c):
    nb, nt = c.shape
    best = max(
        itertools.combinations_with_replacement(range(nb), nt),
        key=lambda m: sum(c[i, j] for j, i in enumerate(m)),
    )
    return list(best), sum(c[i, j] for j, i in enumerate(best))


matrices = st.tuples(st.integers(1, 5), st.integers(1, 6)).flatmap(
    lambda s: arrays(np.float64, s, elements=st.floats(-0.2, 1.0, allow_nan=False))
)


@settings(max_examples=150, deadline=None)
@given(matrices)
def test_monotone_matching_is_optimal(c):
    m = match_layers(c)
    _, best = brute_force(c)
    assert m.total == pytest.approx(best, abs=1e-12)
    assert all(a <= b for a, b in zip(m.mapping, m.mapping[1:]))
    assert m.scores == [c[i, j] for j, i in enumerate(m.mapping)]


@settings(max_examples=60, deadline=None)
@given(matrices, st.floats(-1, 1), st.floats(0.1, 10))
def test_invariant_to_a_common_shift_and_scale(c, shift, scale):
    a, b = match_layers(c), match_layers(c * scale + shift)
    assert b.total == pytest.approx(a.total * scale + shift * c.shape[1], abs=1e-9)
    assert sum(c[i, j] for j, i in enumerate(b.mapping)) == pytest.approx(a.total, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(matrices)
def test_free_matching_is_the_column_argmax_and_bounds_the_monotone_one(c):
    free = match_layers(c, monotone=False)
    assert free.mapping == [int(np.argmax(c[:, j])) for j in range(c.shape[1])]
    assert free.total >= match_layers(c).total - 1e-12


def test_square_diagonal_is_the_identity_and_names_are_kept():
    c = np.full((4, 4), 0.3) + 0.6 * np.eye(4)
    m = match_layers((c, ["b0", "b1", "b2", "b3"], ["t0", "t1", "t2", "t3"]))
    assert m.mapping == [0, 1, 2, 3] and m.unmatched_base == []
    assert m.pairs()[2] == ("t2", "b2", pytest.approx(0.9))
    assert m.as_dict()["pairs"][0] == {"tuned": "t0", "base": "b0", "cka": pytest.approx(0.9)}


def test_monotone_beats_a_crossing_argmax():
    c = np.array([[0.9, 0.85], [0.8, 0.1]])  # column 1 prefers row 0, which a crossing needs
    assert match_layers(c).mapping == [0, 0]
    c = np.array([[0.1, 0.9], [0.95, 0.2]])  # argmax crosses (1, 0); monotone cannot
    assert match_layers(c, monotone=False).mapping == [1, 0]
    assert match_layers(c).mapping in ([0, 0], [1, 1], [0, 1])
    assert match_layers(c).total == pytest.approx(max(0.1 + 0.9, 0.95 + 0.2, 0.1 + 0.2))


def test_nan_entries_are_avoided_and_bad_input_named():
    c = np.array([[np.nan, 0.5], [0.4, np.nan]])
    m = match_layers(c, monotone=False)
    assert m.mapping == [1, 0]
    with pytest.raises(ValueError, match="no monotone matching"):
        match_layers(c)
    with pytest.raises(ValueError, match="tuned layer '1' has an undefined CKA"):
        match_layers(np.array([[0.5, np.nan], [0.4, np.nan]]))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        match_layers(np.zeros(3))
    with pytest.raises(ValueError, match="Inf"):
        match_layers(np.array([[np.inf]]))
    with pytest.raises(ValueError, match="base_names has 1 names for 2"):
        match_layers(np.zeros((2, 2)), base_names=["a"], tuned_names=["x", "y"])


def expanded_llama(after=(1, 3), noise=1e-3):
    """A 4-block tiny LLaMA and its LLaMA-Pro expansion: after each block in ``after`` a copy
    whose output projections are zero (identity at init), then 'trained' by small noise."""
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        use_cache=False,
    )
    base = LlamaModel(cfg).eval()
    tuned = copy.deepcopy(base)
    blocks = []
    for i, block in enumerate(tuned.layers):
        blocks.append(block)
        if i in after:
            new = copy.deepcopy(block)
            with torch.no_grad():
                for lin in (new.self_attn.o_proj, new.mlp.down_proj):
                    lin.weight.normal_(0, noise)
            blocks.append(new)
    tuned.layers = torch.nn.ModuleList(blocks)
    for i, block in enumerate(tuned.layers):
        block.self_attn.layer_idx = i
    tuned.config.num_hidden_layers = len(blocks)
    return base, tuned


def test_llama_pro_expansion_is_recovered():
    from repspace.compare.layer_matching import layer_matching

    base, tuned = expanded_llama()
    g = torch.Generator().manual_seed(1)
    batches = [
        {
            "input_ids": torch.randint(0, 64, (16, 10), generator=g),
            "attention_mask": torch.ones(16, 10, dtype=torch.long),
        }
        for _ in range(4)
    ]
    m = layer_matching(base, tuned, lambda: iter(batches))
    assert len(m.base_names) == 4 and len(m.tuned_names) == 6
    assert m.mapping == [0, 1, 1, 2, 3, 3]
    assert [b for _, b, _ in m.pairs()] == [
        "layers.0",
        "layers.1",
        "layers.1",
        "layers.2",
        "layers.3",
        "layers.3",
    ]
    assert min(m.scores) > 0.99
    # the naive same-index pairing is worse: tuned layer 2 is base layer 1, not 2
    assert m.matrix[1, 2] > m.matrix[2, 2]
    # against an independent capture: the blocks' mean-pooled outputs via output_hidden_states
    from repspace.metrics import linear_cka

    with torch.no_grad():
        hb = [
            torch.cat(
                [base(**b, output_hidden_states=True).hidden_states[k + 1].mean(1) for b in batches]
            )
            for k in range(4)
        ]
        ht = [
            torch.cat(
                [
                    tuned(**b, output_hidden_states=True).hidden_states[k + 1].mean(1)
                    for b in batches
                ]
            )
            for k in range(6)
        ]
    # the last hidden state goes through the final norm in HF's output; blocks 0..4 do not
    for j in range(5):
        for i in range(4):
            if i < 3:
                assert m.matrix[i, j] == pytest.approx(linear_cka(hb[i], ht[j]), abs=1e-6)
