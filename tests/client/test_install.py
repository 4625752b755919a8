"""``pip install convhub`` gives the client alone: it imports and works without the server's
libraries, and the ``convhub`` command says in one line what is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.client.venv import clean_env

SERVER_LIBRARIES = ["sqlalchemy", "greenlet", "alembic", "psycopg", "orjson", "uvicorn", "limits",
                    "redis", "prometheus_client"]  # fmt: skip

PROBE = f"""
import importlib.util, sys
missing = [name for name in {SERVER_LIBRARIES!r} if importlib.util.find_spec(name) is None]
import convhub.client, convhub.wire.volc, convhub.wire.signing
from convhub.client import AsyncImClient, ImClient, ImError
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {SERVER_LIBRARIES!r})
server = sorted(name for name in sys.modules
                if name.startswith(("convhub.dialects", "convhub.domain", "convhub.store")))
print(len(missing), loaded, server, ImClient.create_conversation.__name__)
"""


def test_the_client_installs_and_imports_without_the_server(client_only_python: Path) -> None:
    done = subprocess.run(
        [client_only_python, "-c", PROBE], capture_output=True, text=True, env=clean_env()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(SERVER_LIBRARIES)), "[]", "[]", "create_conversation"]
    where = subprocess.run(
        [client_only_python, "-c", "import convhub, httpx; print(convhub.__path__[0])"],
        capture_output=True, text=True, env=clean_env(), check=True,
    )  # fmt: skip
    assert "site-packages" in where.stdout  # the installed copy, not this checkout


def test_the_wire_package_needs_nothing_but_the_standard_library(client_only_python: Path) -> None:
    probe = (
        "import sys, convhub.wire.coze, convhub.wire.kinds, convhub.wire.signing; "
        "import convhub.wire.volc; "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in {'httpx', 'httpcore'}))"
    )
    done = subprocess.run(
        [client_only_python, "-c", probe], capture_output=True, text=True, env=clean_env()
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_the_command_without_the_server_says_so_in_one_line(client_only_python: Path) -> None:
    command = client_only_python.with_name("convhub")
    done = subprocess.run(
        [command, "serve"], capture_output=True, text=True, env=clean_env(), timeout=60
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("convhub: the server is not installed here (no module ")
    assert done.stderr.rstrip().endswith("install it with: pip install 'convhub[server]'")


WITHOUT_GREENLET = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "greenlet":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Missing())
sys.argv = ["convhub", "serve"]
from convhub.command import main
sys.exit(main())
"""


def test_a_server_install_without_greenlet_says_so_in_one_line() -> None:
    """SQLAlchemy installed without its asyncio extra: SQLAlchemy's own check would raise an
    ImportError with a traceback; convhub imports greenlet first, and names what is missing."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_GREENLET], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "(no module 'greenlet')" in done.stderr
    assert done.stderr.startswith("convhub: the server is not installed here")
