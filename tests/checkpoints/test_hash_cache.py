"""Remembered digests of large checkpoint files (checkpoints/hashing.py): never stale."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from repspace.checkpoints import hashing


@pytest.fixture
def big(tmp_path, monkeypatch):
    monkeypatch.setenv("REPSPACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("REPSPACE_HASH_CACHE", raising=False)
    monkeypatch.setattr(hashing, "DISK_CACHE_MIN_BYTES", 1 << 16)
    monkeypatch.setattr(hashing, "RACY_NS", -1)  # files written by the test count as settled
    monkeypatch.setattr(hashing, "_MEMO", {})
    calls = []
    real = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda p, c: calls.append(p) or real(p, c))
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(1 << 17))
    return path, calls


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_remembered_in_process_and_on_disk(big):
    path, calls = big
    assert hashing.file_sha256(path) == _sha(path)
    assert hashing.file_sha256(path) == _sha(path)
    assert len(calls) == 1
    hashing._MEMO.clear()  # a new process: the digest comes from the disk cache
    assert hashing.file_sha256(path) == _sha(path)
    assert len(calls) == 1
    assert len(list(hashing.cache_dir().iterdir())) == 1


def test_a_rewrite_of_the_same_size_is_hashed_again(big):
    path, calls = big
    first = hashing.file_sha256(path)
    st = os.stat(path)
    time.sleep(0.05)
    path.write_bytes(os.urandom(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored: ctime still moves
    second = hashing.file_sha256(path)
    assert second == _sha(path) != first
    assert len(calls) == 2


def test_a_damaged_cache_entry_is_ignored(big):
    path, calls = big
    hashing.file_sha256(path)
    hashing._MEMO.clear()
    for entry in hashing.cache_dir().iterdir():
        entry.write_text("garbage\n" + "0" * 64 + "\n")
    assert hashing.file_sha256(path) == _sha(path)
    assert len(calls) == 2


def test_cache_off_and_unwritable_cache_still_hash_right(big, monkeypatch, tmp_path):
    path, _ = big
    monkeypatch.setenv("REPSPACE_HASH_CACHE", "0")
    assert hashing.file_sha256(path) == _sha(path)
    assert not (tmp_path / "cache").exists()
    hashing._MEMO.clear()
    monkeypatch.delenv("REPSPACE_HASH_CACHE")
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("REPSPACE_CACHE_DIR", str(blocker))
    assert hashing.file_sha256(path) == _sha(path)


def test_recently_written_and_small_files_are_never_remembered(big, monkeypatch):
    path, calls = big
    monkeypatch.setattr(hashing, "RACY_NS", 10**12)  # everything is "just written"
    hashing.file_sha256(path)
    hashing.file_sha256(path)
    assert len(calls) == 2
    monkeypatch.setattr(hashing, "RACY_NS", -1)
    small = path.with_name("config.json")
    small.write_text("{}")
    hashing.file_sha256(small)
    hashing.file_sha256(small)
    assert len(calls) == 4
    assert not hashing.cache_dir().exists()
