"""repspace._jsonfile.read_json: the one reader of JSON files a stranger may have written."""

import json
import os

import pytest

from repspace._jsonfile import NOT_REGULAR, JSONFileError, read_json


def test_reads_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hidden_size": 32, "name": "é"}), encoding="utf-8")
    assert read_json(path) == {"hidden_size": 32, "name": "é"}
    assert read_json(str(path), max_bytes=path.stat().st_size) == {"hidden_size": 32, "name": "é"}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.json"
    os.mkfifo(fifo)  # no writer: a plain open() would wait for one forever
    with pytest.raises(JSONFileError) as info:
        read_json(fifo)
    assert info.value.problem == NOT_REGULAR and info.value.size is None
    assert str(info.value).startswith(str(fifo))


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(JSONFileError, match="not a regular file"):
        read_json(tmp_path)


def test_size_bound(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "0," * 100 + "0]")
    with pytest.raises(JSONFileError) as info:
        read_json(path, max_bytes=50)
    assert info.value.size == path.stat().st_size and "too large" in info.value.problem


@pytest.mark.parametrize(
    "text,error", [("{", json.JSONDecodeError), ("[" * 100000 + "]" * 100000, RecursionError)]
)
def test_bad_json_is_one_error_with_the_parsers_words(tmp_path, text, error):
    path = tmp_path / "bad.json"
    path.write_text(text)
    try:
        json.loads(text)
    except error as exc:
        expected = str(exc)
    with pytest.raises(JSONFileError) as info:
        read_json(path)
    assert info.value.problem == expected and info.value.size is None


def test_missing_and_undecodable(tmp_path):
    with pytest.raises(JSONFileError, match="No such file"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(JSONFileError, match="utf-8"):
        read_json(tmp_path / "latin1.json")
