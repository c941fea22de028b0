"""The compatibility zoo, built once per test session in a temporary folder."""

import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory):
    """Folder holding ``<arch>/``, ``<arch>-lora/`` and ``<arch>-full/`` (built on first use)."""
    return tmp_path_factory.mktemp("compat-zoo")


@pytest.fixture(scope="session")
def arch_results(zoo_root):
    """``results(arch)``: :func:`tests.compat.checks.run_checks` of ``arch``, run once per session
    (the per-architecture test and the docs-table test read the same results)."""
    from tests.compat import checks

    cache: dict = {}

    def results(arch: str) -> dict:
        if arch not in cache:
            cache[arch] = checks.run_checks(arch, zoo_root)
        return cache[arch]

    return results
