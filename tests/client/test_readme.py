"""The README's first script, run as written (credentials and address filled in) by a Python that
has only the client installed, against a live server: it prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.client.venv import REPO, clean_env
from tests.support import LiveServer, Tenant

README = (REPO / "README.md").read_text(encoding="utf-8")
CREDENTIALS = 'AK, SK, APP = "AKLT…", "…", 100001'
ADDRESS = "http://127.0.0.1:8000"


def _script_and_output() -> tuple[str, str]:
    match = re.search(
        r"```python\n(from convhub\.client import ImClient, ImError\n.*?)```\n.*?```\n(.*?)```",
        README,
        re.DOTALL,
    )
    assert match, "README: the client script and the output shown after it are gone"
    return match.group(1), match.group(2)


def test_the_readme_script_prints_what_the_readme_shows(
    client_only_python: Path, server: LiveServer, tenant: Tenant
) -> None:
    script, shown = _script_and_output()
    assert script.count(CREDENTIALS) == 1 and script.count(ADDRESS) == 1
    filled = script.replace(
        CREDENTIALS, f"AK, SK, APP = {tenant.access_key!r}, {tenant.secret_key!r}, {tenant.app_id}"
    ).replace(ADDRESS, server.base_url)
    done = subprocess.run(
        [client_only_python, "-c", filled], capture_output=True, text=True, env=clean_env(),
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def test_the_plain_volcengine_sdk_path_stays_documented() -> None:
    assert "from volcengine.base.Service import Service" in README
    assert "volcenginesdkcore.universal.UniversalApi" in README
