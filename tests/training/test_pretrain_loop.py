"""`repspace pretrain`'s loop (built from the trainer's helpers) pinned bit for bit to the
straightforward loop that produced the shipped embedded weights.

The reference below is that loop as it was written before the refactor (LambdaLR, one
data-order generator consumed with a running position, two-group AdamW with betas 0.9/0.98,
clipping over ``model.parameters()``).  Any edit that changes the recipe's numbers (data order,
schedule, optimiser groups or betas, clipping order, step order) makes a tensor differ here.
"""

import math
from dataclasses import replace

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

import repspace.training.pretrain as pt  # noqa: E402
import repspace.training.pretrain.loop as loop  # noqa: E402
from repspace.training.trainer import adamw, batch_indices, clip_and_set_lr, epoch_batch  # noqa: E402

# Much smaller than the shipped architecture: the loop, not the model, is under test.
_ARCH = dict(
    patch_size=8,
    vision_hidden=16,
    vision_layers=1,
    text_hidden=16,
    text_layers=1,
    num_heads=2,
    mlp_ratio=2,
)


def _reference_lr(steps, warmup_ratio):
    warm = max(1, int(round(warmup_ratio * steps)))

    def f(s):
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - warm) / max(1, steps - warm))))

    return f


def _reference_order(n, batch_size, steps, seed):
    gen = torch.Generator().manual_seed(seed)
    order, pos, out = torch.randperm(n, generator=gen), 0, []
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        out.append(order[pos : pos + min(batch_size, n)])
        pos += batch_size
    return out


def _reference_train(model, pixels_u8, batch_ids, batch_mask, cfg):
    from repspace.models import pixel_values

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    keep = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": keep, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _reference_lr(cfg.steps, cfg.warmup_ratio))
    losses = []
    model.train()
    for idx in _reference_order(len(pixels_u8), cfg.batch_size, cfg.steps, cfg.seed):
        mask = batch_mask[idx]
        width = int(mask.sum(1).max())
        ids, mask = batch_ids[idx, :width], mask[:, :width]
        loss = model(
            pixel_values=pixel_values(pixels_u8[idx]),
            input_ids=ids,
            attention_mask=mask,
            labels=ids.masked_fill(mask == 0, -100),
        ).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


@pytest.fixture(scope="module")
def data():
    from repspace.data import ShapesWorld, decoder_inputs
    from repspace.models import build_processor

    world = ShapesWorld(seed=0, domain="source", image_size=24, n_train=10, n_test=2)
    from repspace.training.pretrain_corpus import build_targets

    images, refs, scenes = loop.render(world, "train", 10)
    tok = build_processor(24).tokenizer
    enc = decoder_inputs(tok, [r[0] for r in refs])
    targets = build_targets(tok, scenes, "canonical", seed=0)
    # the v1 corpus is exactly the canonical captions the reference loop was written for
    assert torch.equal(targets.input_ids[:, 0], enc["input_ids"])
    assert torch.equal(targets.label_mask[:, 0], enc["attention_mask"])
    return torch.from_numpy(images), enc["input_ids"], enc["attention_mask"], tok, targets


def _model(tok, seed):
    from repspace.models import tiny_blip_config

    torch.manual_seed(seed)
    return transformers.BlipForConditionalGeneration(
        tiny_blip_config(image_size=24, tokenizer=tok, **_ARCH)
    )


_BASE = pt.PretrainConfig(
    steps=7,
    batch_size=4,
    n_train=10,
    n_eval=2,
    image_size=24,
    lr=5e-3,
    weight_decay=0.1,
    warmup_ratio=0.3,
    max_grad_norm=0.5,
    architecture=_ARCH,
    corpus="canonical",
)


@pytest.mark.parametrize(
    "cfg",
    [
        _BASE,  # 3 epochs of 2 batches, ragged tail dropped
        replace(_BASE, steps=3, batch_size=16, seed=3),  # batch larger than the data
        replace(_BASE, steps=3, batch_size=10, warmup_ratio=0.0),  # batch == data, no warm-up asked
    ],
    ids=["epochs", "batch_gt_n", "batch_eq_n"],
)
def test_loop_is_bit_identical_to_the_reference_recipe(data, cfg):
    pixels, ids, mask, tok, targets = data
    ref, new = _model(tok, cfg.seed), _model(tok, cfg.seed)
    assert all(
        torch.equal(a, b) for a, b in zip(ref.state_dict().values(), new.state_dict().values())
    )
    losses = _reference_train(ref, pixels, ids, mask, cfg)
    curve, _ = loop.train_loop(new, pixels, targets, cfg, progress=False)
    assert curve == [[cfg.steps, round(sum(losses) / len(losses), 5)]]
    a, b = ref.state_dict(), new.state_dict()
    assert a.keys() == b.keys()
    moved = _model(tok, cfg.seed).state_dict()
    assert any(not torch.equal(a[k], moved[k]) for k in a)  # training did change the weights
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_lr_schedule_matches_the_reference_at_every_step():
    for steps in (1, 2, 3, 7, 10, 100):
        for ratio in (0.0, 0.05, 0.3, 0.5, 0.9):
            f, g = loop.lr_lambda(steps, ratio), _reference_lr(steps, ratio)
            assert [f(s) for s in range(steps + 1)] == [g(s) for s in range(steps + 1)], (
                steps,
                ratio,
            )


def test_data_order_matches_the_reference_stream():
    for n, b, steps in [(10, 4, 9), (10, 3, 12), (10, 10, 4), (10, 16, 4), (7, 2, 11), (1, 1, 3)]:
        perms = loop.StreamPermutations(n, seed=5, skip=int(b > n))
        got = [epoch_batch(s, n, b, perms) for s in range(steps)]
        want = _reference_order(n, b, steps, seed=5)
        assert all(torch.equal(x, y) for x, y in zip(got, want)), (n, b)
    with pytest.raises(ValueError, match="only moves forward"):
        perms(0)


def test_trainer_helpers_keep_the_trainer_recipe():
    """The generalised helpers still give `repspace train` its own numbers: per-epoch reseeded
    order, one AdamW group with default betas and foreach off, clipping only when asked."""
    for step in range(8):
        per_epoch = 10 // 3
        g = torch.Generator().manual_seed(7 * 1_000_003 + step // per_epoch)
        k = step % per_epoch
        assert torch.equal(
            batch_indices(step, 10, 3, seed=7), torch.randperm(10, generator=g)[3 * k : 3 * k + 3]
        )
    lin = torch.nn.Linear(3, 2)
    lin.bias.requires_grad_(False)
    opt = adamw(lin.named_parameters(), 0.1, 0.01)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [lin.weight]
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["foreach"] is False
    lin.weight.grad = torch.full_like(lin.weight, 10.0)
    clip_and_set_lr(opt, 0.25, 0.0)
    assert (
        torch.equal(lin.weight.grad, torch.full_like(lin.weight, 10.0))
        and opt.param_groups[0]["lr"] == 0.25
    )
    clip_and_set_lr(opt, 0.5, 1.0)
    assert (
        math.isclose(float(lin.weight.grad.norm()), 1.0, rel_tol=1e-5)
        and opt.param_groups[0]["lr"] == 0.5
    )
