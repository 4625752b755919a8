"""``convhub`` as a process: what a person at a shell sees when something is wrong (one line, no
traceback), a pipe closed early, and a first start killed half-way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from convhub.domain import directory
from convhub.store.engine import create_database_engine
from convhub.store.tables import accounts
from convhub.store.unit_of_work import run
from tests.support import (
    VERSION,
    Tenant,
    child_env,
    convhub_command,
    free_port,
    migrated,
    signed_headers,
)


def shell(
    args: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *convhub_command(), *args],
        cwd=cwd,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode not in (0, None), (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("convhub"), done.stderr
    return done.stderr


# =========================================================================== mistakes


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--port", "99999"], {}, "'99999' is not a port"),
        (["--port", "-1"], {}, "'-1' is not a port"),
        (["--workers", "0"], {}, "--workers: '0'"),
        ([], {"CONVHUB_MAX_BODY_BYTES": "1MB"}, "CONVHUB_MAX_BODY_BYTES='1MB'"),
        (["--rate-limits", "*=lots"], {}, "--rate-limits '*=lots'"),
        (["--database-url", "postgresql://u@127.0.0.1:1/x"], {}, "nothing accepts connections"),
        (["--database-url", "foo"], {}, "'foo' is not a database URL"),
        (["--workers", "2"], {}, "--workers 2 on SQLite"),
    ],
    ids=[
        "port-99999",
        "port-minus-1",
        "workers-0",
        "max-body-1MB",
        "rate-limits",
        "refused",
        "foo",
        "sqlite-workers",
    ],
)
def test_serve_mistakes_end_the_process_with_one_line(
    args: list[str], env: dict[str, str], words: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = shell(["serve", *args], tmp_path, env=child_env(env))
    assert words in one_line(done) and done.stdout == ""
    assert "Uvicorn running" not in done.stderr and time.monotonic() - started < 30
    assert list(tmp_path.iterdir()) == []  # not even the default database was made


def _unprivileged() -> list[str]:
    """A prefix that makes permissions bind: root ignores a directory's mode unless it gives up
    the capabilities that let it."""
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search,-fowner"
    if not Path("/usr/bin/setpriv").exists():
        pytest.fail("running as root, the read-only tests need setpriv (util-linux)")
    return ["/usr/bin/setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("command", [["serve"], ["db", "upgrade"]])
def test_a_read_only_directory_for_the_sqlite_file_is_one_line(
    command: list[str], tmp_path: Path
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        url = f"sqlite:///{folder / 'convhub.db'}"
        done = shell([*command, "--database-url", url], tmp_path, prefix=_unprivileged())
        assert f"cannot open {url}: {folder} is not writable" in one_line(done)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_a_read_only_sqlite_file_is_one_line(tmp_path: Path) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'convhub.db'}")
    (tmp_path / "convhub.db").chmod(0o444)
    done = shell(["accounts", "create", "ann", "--database-url", url], tmp_path,
                 prefix=_unprivileged())  # fmt: skip
    assert f"the file {tmp_path / 'convhub.db'} is read-only" in one_line(done)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    args = ["accounts", "list", "--database-url", f"sqlite:///{tmp_path}/none.db"]
    assert "no database at" in one_line(shell(args, tmp_path))
    done = shell(["--debug", *args], tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ConfigError: no database at" in done.stderr


def test_output_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'many.db'}")
    engine = create_database_engine(url, pool_size=1)
    try:
        run(engine, lambda uow: [
            directory.create_account(uow, f"account-{i:05}", now=1) for i in range(4000)
        ])  # fmt: skip
    finally:
        engine.dispose()
    command = " ".join([*convhub_command(), "accounts", "list", "--json", "--database-url", url])
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command} | head -1"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == "[\n"
    assert done.stderr == ""  # no BrokenPipeError, no "Exception ignored"
    assert done.returncode == 141  # convhub's, through pipefail: as if SIGPIPE had ended it


# =========================================================================== the first start


# ``convhub serve`` with one change: the bootstrap stops for good right after it has made the
# account and the app, and says so; the test kills it there.
_STOPS_IN_THE_BOOTSTRAP = """
import sys, time
from convhub import cli
from convhub.domain import directory

create_app = directory.create_app

def stop_after(uow, account, **kwargs):
    app_id = create_app(uow, account, **kwargs)
    names = [a.name for a in uow.access.accounts()]
    print(f"inside the bootstrap: accounts {names}, app {app_id}", flush=True)
    time.sleep(600)

directory.create_app = stop_after
sys.exit(cli.main(sys.argv[1:]))
"""


@contextmanager
def serving(url: str, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``convhub serve`` on ``url``, answering /healthz; stopped at the end."""
    port = free_port()
    out = workdir / "out.txt"
    with out.open("wb") as stdout, (workdir / "err.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [
                *convhub_command(),
                "serve",
                "--port",
                str(port),
                "--database-url",
                url,
                "--no-access-log",
            ],
            cwd=workdir,
            env=child_env(),
            stdout=stdout,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (workdir / "err.txt").read_text()
            assert time.monotonic() < deadline, "convhub serve did not become ready"
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield process, base, out
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _accounts(url: str) -> list[str]:
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(accounts.c.name)).scalars())
    finally:
        engine.dispose()


def test_a_first_start_killed_inside_the_bootstrap_leaves_nothing_and_the_next_completes(
    empty_database_url: str, tmp_path: Path
) -> None:
    url = empty_database_url
    out = tmp_path / "killed.txt"
    with out.open("wb") as stdout:
        killed = subprocess.Popen(
            [sys.executable, "-c", _STOPS_IN_THE_BOOTSTRAP, "serve", "--database-url", url],
            cwd=tmp_path,
            env=child_env(),
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "inside the bootstrap" not in out.read_text():
            assert killed.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.02)
        # The account and the app were written, in the bootstrap's transaction.
        assert "accounts ['default'], app 100001" in out.read_text()
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.kill()
        killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert _accounts(url) == []  # nothing of the bootstrap outlived it

    (tmp_path / "second").mkdir()
    with serving(url, tmp_path / "second") as (_, base, printed):
        text = printed.read_text()
        assert text.startswith("convhub: first start on"), text
        found = dict(re.findall(r"^  (AppId|AccessKey|SecretKey|Token) +(\S+)$", text, re.M))
        tenant = Tenant("default", int(found["AppId"]), found["AccessKey"], found["SecretKey"])
        body = json.dumps({"AppId": tenant.app_id, "OwnerUserId": 1, "OtherUserId": 2,
                           "ConversationCoreInfo": {"ConversationType": 1}}).encode()  # fmt: skip
        query = {"Action": "CreateConversation", "Version": VERSION}
        host = base.removeprefix("http://")
        headers = signed_headers(tenant, host, query, body)
        volc = httpx.post(base + "/", params=query, content=body, headers=headers, timeout=30)
        assert volc.status_code == 200 and "Error" not in volc.json()["ResponseMetadata"], volc.text
        coze = httpx.get(base + "/v1/conversations", params={"bot_id": "b"}, timeout=30,
                         headers={"Authorization": f"Bearer {found['Token']}"})  # fmt: skip
        assert coze.status_code == 200 and coze.json()["code"] == 0, coze.text
    assert _accounts(url) == ["default"]


def test_a_second_serve_on_one_sqlite_file_is_refused_while_the_first_serves(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'convhub.db'}"
    (tmp_path / "second").mkdir()
    with serving(url, tmp_path) as (first, _, _):
        done = shell(["serve", "--database-url", url], tmp_path / "second")
        assert "another convhub serve is serving" in one_line(done)
        # The lock goes with the process, however it ends: SIGKILL leaves none behind.
        first.kill()
        first.wait()
        with serving(url, tmp_path / "second"):
            pass
