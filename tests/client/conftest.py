from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client.venv import REPO, clean_env


@pytest.fixture(scope="session")
def client_only_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a fresh venv where this working tree is installed as a user would install
    the client: ``pip install convhub``, dependencies and all, no extras."""
    root = tmp_path_factory.mktemp("client-only")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", source]
    done = subprocess.run(install, env=clean_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return python
