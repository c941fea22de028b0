"""The compatibility zoo, built once per test session in a temporary folder."""
import pytest

pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory):
    """Folder holding ``<arch>/``, ``<arch>-lora/`` and ``<arch>-full/`` (built on first use)."""
    return tmp_path_factory.mktemp("compat-zoo")
