"""Shared test settings (set before any test module imports torch) and fixtures."""

import os
import urllib.error
from pathlib import Path

import pytest

# Spinning OpenMP workers make torch's many small operations 10x slower on a busy 2-core
# machine; the CLI sets the same default.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def offline_torch_hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache under ``tmp_path`` where every download fails as offline;
    returns its checkpoints folder (where weight files are looked for)."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "hub" / "checkpoints"


@pytest.fixture(autouse=True)
def _restore_log_levels():
    """``ianet_stream.cli.main`` sets our loggers' levels (``--quiet``); a test that runs it
    must not change what the next test's ``caplog`` sees."""
    import logging

    names = ("ianet", "ianet_stream", "ianet_stream_plugins")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
