"""Issue 26, round two, the error funnel and the command line: every bad option value names
the option (exit 2, one line, before any model where it can be), messages name the input the
user gave (never an internal name) and the fix, names reach the terminal escaped (bidi
overrides included), and every path of compare checks that the models share a tokenizer."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import repspace.checkpoints
import repspace.compare.api as api
from repspace.cli import main
from tests.compare.conftest import WORDS, tiny_bert
from tests.hostile.conftest import FAST, refused


@pytest.fixture
def no_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a checkpoint was loaded before the refusal")

    monkeypatch.setattr(api, "load_checkpoint", boom)
    monkeypatch.setattr(repspace.checkpoints, "load_checkpoint", boom)


def _compare(ws, *extra, tuned=None):
    return [
        "compare",
        ws.base,
        tuned or ws.adapter,
        "--probe",
        ws.probe,
        *FAST,
        "-o",
        "out",
        *extra,
    ]


# -- options that name themselves --------------------------------------------------------------


@pytest.mark.parametrize(
    "args,names",
    [
        (["--device", "meta"], "--device 'meta'"),
        (["--device", "cuda:7"], "--device 'cuda:7'"),
        (["--device-map", "foo"], "--device-map 'foo'"),
        (["--device-map", "meta"], "--device-map 'meta'"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**64)], "--seed"),
        (["--seed", str(2**32)], "--seed"),
    ],
)
def test_a_bad_device_or_seed_names_the_option_not_a_checkpoint(ws, capsys, no_model, args, names):
    line = refused(capsys, ws.root, _compare(ws, *args), names=names, out=ws.root / "work" / "out")
    assert str(ws.base) not in line and "unexpected" not in line


@pytest.mark.parametrize(
    "command,option,value",
    [
        (
            ["train", "--method", "lora", "--task", "classify", "--base", "BASE"],
            "--threads",
            "100000",
        ),
        (["pretrain", "--quick"], "--threads", "100000"),
        (["study", "no-such-study.toml"], "--threads", "100000"),
        (["train", "--method", "lora", "--task", "classify", "--base", "BASE"], "--seed", "-1"),
        (["pretrain", "--quick"], "--seed", str(2**64)),
    ],
    ids=["train-threads", "pretrain-threads", "study-threads", "train-seed", "pretrain-seed"],
)
def test_threads_and_seeds_are_bounded_at_the_door_of_every_command(
    ws, capsys, command, option, value
):
    """--threads 100000 crashed torch's thread pool (segfault, exit 139)."""
    args = [str(ws.base) if a == "BASE" else a for a in command]
    line = refused(
        capsys,
        ws.root,
        [*args, option, value, "-o", "run"],
        names=option,
        out=ws.root / "work" / "run",
    )
    if option == "--threads":
        assert "at most" in line and "core" in line


def test_a_task_id_beyond_the_adapters_tasks_names_the_option(ws, capsys):
    from peft import PolyConfig, get_peft_model
    from transformers import AutoModel

    poly = ws.root / "poly"
    get_peft_model(
        AutoModel.from_pretrained(ws.base),
        PolyConfig(
            task_type="FEATURE_EXTRACTION", target_modules=["query", "value"], r=2, n_tasks=2
        ),
    ).save_pretrained(poly)
    line = refused(
        capsys,
        ws.root,
        _compare(ws, "--task-id", "2", "--no-report", tuned=poly),
        names="--task-id 2",
    )
    assert "2 task(s)" in line and "unexpected" not in line


def test_a_task_id_for_models_without_tasks_is_refused_not_recorded(ws, capsys):
    line = refused(
        capsys, ws.root, _compare(ws, "--task-id", "0", "--no-report"), names="--task-id 0"
    )
    assert "task-conditioned" in line and "drop --task-id" in line


# -- repspace weights ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        json.dumps({"schema": "repspace.report", "results": [1, 2]}),
        json.dumps(
            {
                "schema": "repspace.report",
                "results": [
                    {
                        "checkpoint": "lora",
                        "layer": "encoder.layer.0",
                        "metrics": {"effective_rank_base": "x", "effective_rank_tuned": 1.0},
                    }
                ],
            }
        ),
    ],
)
def test_a_malformed_report_is_refused_before_any_model(ws, capsys, no_model, content):
    report = ws.root / "report"
    report.mkdir()
    (report / "report.json").write_text(content)
    refused(
        capsys,
        ws.root,
        ["weights", ws.base, ws.adapter, "-o", "out", "--report", report],
        names=f"--report {report / 'report.json'}",
        out=ws.root / "work" / "out",
    )


def test_a_width_mismatch_in_weights_names_checkpoints_layer_and_fix(ws, capsys):
    wide = ws.root / "wide"
    tiny_bert(seed=3, hidden=64).save_pretrained(wide)
    line = refused(
        capsys,
        ws.root,
        ["weights", ws.base, wide, "-o", "out"],
        names=f"tuned checkpoint {wide} against base {ws.base}",
        out=ws.root / "work" / "out",
    )
    assert "encoder.layer.0" in line and "64" in line and "fine-tuned from" in line


@pytest.fixture
def hot(ws):
    """A LoRA whose merge overflows float16: its factors scaled up 300 times."""
    from safetensors.torch import load_file, save_file

    hot = ws.root / "hot"
    shutil.copytree(ws.adapter, hot)
    state = load_file(hot / "adapter_model.safetensors")
    save_file({k: 300 * v for k, v in state.items()}, hot / "adapter_model.safetensors")
    return hot


@pytest.mark.parametrize("command", ["compare", "weights"])
def test_a_float16_merge_overflow_blames_the_option_not_the_samples(ws, capsys, hot, command):
    args = (
        _compare(ws, "--merge-dtype", "float16", "--no-report", tuned=hot)
        if command == "compare"
        else [
            "weights",
            ws.base,
            hot,
            "-o",
            "out",
            "--merge-dtype",
            "float16",
            "--probe",
            ws.probe,
            "--num-samples",
            "8",
        ]
    )
    line = refused(
        capsys, ws.root, args, names="--merge-dtype float16", out=ws.root / "work" / "out"
    )
    assert "merged-float16" not in line and "samples" not in line and "bfloat16" in line
    assert "hot" in line  # the checkpoint whose merge overflows, as the user named it


# -- names on the terminal -----------------------------------------------------------------------

BIDI = "lora-\u202egnp.exe\u202c-\u2066x\u2069"


def test_bidi_overrides_in_a_name_never_reach_the_terminal_raw(ws, capsys):
    tuned = ws.root / BIDI
    shutil.copytree(ws.adapter, tuned)
    rc = main([str(a) for a in _compare(ws, "--no-report", tuned=tuned)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    for raw in "\u202e\u202c\u2066\u2069":
        assert raw not in out and raw not in err
    assert "lora-\\u202egnp.exe\\u202c" in out


def test_bidi_overrides_in_the_weights_command_output_are_escaped(ws, capsys):
    tuned = ws.root / BIDI
    shutil.copytree(ws.adapter, tuned)
    rc = main([str(a) for a in ["weights", ws.base, tuned, "-o", "out"]])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "\u202e" not in out + err and "\\u202e" in out


# -- one tokenizer on every path of compare ------------------------------------------------------


@pytest.fixture
def other_tokenizer(ws):
    """The base's architecture with a tokenizer numbering the same words differently."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {
        t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *reversed(WORDS)])
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = ws.root / "other-tok"
    torch.manual_seed(5)
    tiny_bert(seed=5).save_pretrained(folder)
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "extra",
    [[], ["--two-models"], ["--match-layers"], ["--config", "BASE"]],
    ids=["plain", "two-models", "match-layers", "config"],
)
def test_models_with_different_tokenizers_are_refused_on_every_path(
    ws, capsys, other_tokenizer, extra
):
    extra = [str(ws.base) if e == "BASE" else e for e in extra]
    line = refused(
        capsys,
        ws.root,
        _compare(ws, *extra, "--no-report", tuned=other_tokenizer),
        names=f"tuned checkpoint {other_tokenizer}",
    )
    assert "token ids" in line


def test_an_adapter_moved_onto_a_model_with_another_tokenizer_is_refused(
    ws, capsys, other_tokenizer
):
    line = refused(
        capsys,
        ws.root,
        _compare(ws, "--base-override", other_tokenizer, "--no-report"),
        names=f"tuned checkpoint {ws.adapter}",
    )
    assert "--base-override" in line
