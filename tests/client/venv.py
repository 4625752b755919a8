"""A fresh venv with this working tree installed as a client-only user would install it."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def clean_env() -> dict[str, str]:
    """The environment minus anything that would let a child Python see this checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
