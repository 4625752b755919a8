from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from sqlalchemy import make_url

from convhub.cli import main
from convhub.domain import directory
from convhub.errors import ConfigError
from convhub.store import migrate
from convhub.store.engine import create_database_engine, mask_url
from tests import admin
from tests.postgres import POSTGRES_ADMIN_URL
from tests.support import ENGINES, empty_postgres


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_accounts_apps_and_keys_round_trip(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", database_url)
    name = "cli-" + secrets.token_hex(4)
    assert _run(capsys, "accounts", "create", name, *db)[0] == 0
    code, _, err = _run(capsys, "accounts", "create", name, *db)
    assert code == 1 and "exists already" in err

    code, out, _ = _run(capsys, "apps", "create", "--account", name, *db)
    assert code == 0
    app_id = int(out.split()[2])
    code, out, _ = _run(capsys, "apps", "list", "--account", name, "--json", *db)
    assert [a["app_id"] for a in json.loads(out)] == [app_id]

    code, out, err = _run(capsys, "keys", "create", "--account", name, *db)
    lines = dict(line.split() for line in out.strip().splitlines())
    access_key, secret_key = lines["AccessKey"], lines["SecretKey"]
    assert access_key.startswith("AKLT") and len(secret_key) >= 32
    assert "shown this once" in err

    code, out, _ = _run(capsys, "keys", "list", "--account", name, "--json", *db)
    listed = json.loads(out)
    assert [k["access_key"] for k in listed] == [access_key]
    assert secret_key not in out  # a secret is shown once, never listed

    assert _run(capsys, "keys", "disable", access_key, *db)[0] == 0
    _, out, _ = _run(capsys, "keys", "list", "--account", name, "--json", *db)
    assert json.loads(out)[0]["status"] == "disabled"
    assert _run(capsys, "apps", "disable", str(app_id), *db)[0] == 0
    assert _run(capsys, "accounts", "disable", name, *db)[0] == 0
    _, out, _ = _run(capsys, "accounts", "list", "--json", *db)
    assert {"name": name, "status": "disabled"}.items() <= next(
        a for a in json.loads(out) if a["name"] == name
    ).items()


def test_unknown_account_is_a_clear_error(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "keys", "create", "--account", "nobody-here", "--database-url", database_url
    )
    assert code == 1 and "no account named 'nobody-here'" in err


def test_bootstrap_happens_once(tmp_path: object) -> None:
    from convhub.store import migrate

    url = f"sqlite:///{tmp_path}/boot.db"
    migrate.upgrade(url)
    engine = create_database_engine(url, pool_size=1)
    try:
        made = admin.bootstrap_if_empty(engine)
        assert made is not None and made.app_id == admin.FIRST_APP_ID
        assert admin.bootstrap_if_empty(engine) is None
        assert [k["access_key"] for k in admin.list_keys(engine)] == [made.key.access_key]
    finally:
        engine.dispose()


def test_tokens_are_shown_once_listed_without_their_text_and_revocable(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", database_url)
    name = "cli-" + secrets.token_hex(4)
    _run(capsys, "accounts", "create", name, *db)
    _run(capsys, "apps", "create", "--account", name, *db)
    code, out, err = _run(
        capsys,
        "tokens", "create", "--account", name, "--user", "ann",
        "--permissions", "createConversation,listConversation", "--expires-in", "3600", *db,
    )  # fmt: skip
    assert code == 0 and "shown this once" in err
    printed = dict(line.split() for line in out.strip().splitlines())
    token, token_id = printed["Token"], int(printed["TokenId"])
    assert token.startswith("pat_")

    _, out, _ = _run(capsys, "tokens", "list", "--account", name, "--json", *db)
    (listed,) = json.loads(out)
    assert token not in out
    assert listed["id"] == token_id and listed["user"] == "ann" and listed["revoked"] is False
    assert listed["permissions"] == "createConversation,listConversation"
    assert listed["expire_time"] is not None

    assert _run(capsys, "tokens", "revoke", str(token_id), *db)[0] == 0
    _, out, _ = _run(capsys, "tokens", "list", "--account", name, "--json", *db)
    assert json.loads(out)[0]["revoked"] is True

    code, _, err = _run(
        capsys, "tokens", "create", "--account", name, "--user", "ann",
        "--permissions", "renameEverything", *db,
    )  # fmt: skip
    assert code == 1 and "unknown permissions: renameEverything" in err


def test_a_token_user_is_kept_in_canonical_form(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", database_url)
    name = "cli-" + secrets.token_hex(4)
    _run(capsys, "accounts", "create", name, *db)
    _run(capsys, "apps", "create", "--account", name, *db)
    code, _, _ = _run(capsys, "tokens", "create", "--account", name, "--user", "0010001", *db)
    assert code == 0
    _, out, _ = _run(capsys, "tokens", "list", "--account", name, "--json", *db)
    assert json.loads(out)[0]["user"] == "10001"  # the same user as OwnerUserId 10001


def test_concurrent_apps_create_take_distinct_ids_without_a_raw_error(database_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from convhub.store.engine import create_database_engine
    from tests import admin

    engine = create_database_engine(database_url, pool_size=8)
    try:
        name = "cli-" + secrets.token_hex(4)
        admin.create_account(engine, name)
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda _: admin.create_app(engine, name), range(16)))
    finally:
        engine.dispose()
    assert len(set(made)) == 16


# =========================================================================== mistakes, as one line


NUMERIC_SETTINGS = [
    "CONVHUB_MAX_BODY_BYTES",
    "CONVHUB_ACCESS_CACHE_SECONDS",
    "CONVHUB_SIGNATURE_WINDOW_SECONDS",
    "CONVHUB_POOL_SIZE",
    "CONVHUB_MAX_QUEUED_WRITES",
    "CONVHUB_KEPT_CONVERSATIONS",
    "CONVHUB_MAX_GROUP_MEMBERS",
    "CONVHUB_MAX_LIVE_GROUP_MEMBERS",
    "CONVHUB_MAX_USER_GROUPS",
    "CONVHUB_MAX_LIVE_GROUPS_PER_APP",
]
ADMIN_COMMANDS = [
    ["accounts", "list"],
    ["accounts", "create", "ann"],
    ["apps", "list"],
    ["apps", "create", "--account", "ann"],
    ["keys", "list"],
    ["keys", "create", "--account", "ann"],
    ["tokens", "list"],
    ["tokens", "create", "--account", "ann", "--user", "ann"],
    ["db", "current"],
    ["db", "history"],
    ["db", "backup", "copy.db"],
    ["db", "downgrade", "base"],
]


def one_line(code: int, err: str) -> str:
    """The error line of a command that failed as a person should see it fail."""
    assert code != 0, err
    assert "Traceback" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("convhub"), err
    return err


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """What serves (``workers.serve``) replaced by a recorder of its uvicorn settings; the
    CONVHUB_* that serve sets restored afterwards."""
    from convhub import workers

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(workers, "serve", lambda config: calls.append(vars(config)))
    for name in ("CONVHUB_DATABASE_URL", "CONVHUB_RATE_LIMITS", "CONVHUB_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
@pytest.mark.parametrize("value", ["1MB", "-1", "2.5e", "nan"])
def test_serve_names_a_numeric_setting_it_cannot_use_before_it_starts(
    name: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_serving: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    database = tmp_path / "convhub.db"
    err = one_line(*_run(capsys, "serve", "--database-url", f"sqlite:///{database}")[::2])
    assert f"{name}={value!r}" in err and "unset it for the default" in err
    assert no_serving == [] and not database.exists()  # refused before the schema or uvicorn


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--port", "99999"], "'99999' is not a port"),
        (["--port", "-1"], "'-1' is not a port"),
        (["--port", "0"], "'0' is not a port"),
        (["--port", "http"], "'http' is not a port"),
        (["--workers", "0"], "--workers: '0'"),
        (["--workers", "-2"], "--workers: '-2'"),
        (["--log-level", "loud"], "--log-level: invalid choice"),
        (["--rate-limits", "CreateConversation=fast"], "--rate-limits 'CreateConversation=fast'"),
        (["--rate-limits", "CreateConversations=5"], "unknown operation 'CreateConversations'"),
        (["--redis-url", "localhost:6379"], "--redis-url 'localhost:6379' is not a Redis URL"),
    ],
)
def test_serve_refuses_flags_it_cannot_honour_before_it_starts(
    flags: list[str],
    words: str,
    tmp_path: Path,
    no_serving: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = tmp_path / "convhub.db"
    err = one_line(*_run(capsys, "serve", *flags, "--database-url", f"sqlite:///{database}")[::2])
    assert words in err
    assert no_serving == [] and not database.exists()


def test_bad_rate_limits_in_the_environment_name_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    no_serving: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CONVHUB_RATE_LIMITS", "*=0")
    err = one_line(*_run(capsys, "serve", "--database-url", f"sqlite:///{tmp_path}/c.db")[::2])
    assert "CONVHUB_RATE_LIMITS='*=0'" in err and "bad rate limit" in err
    assert no_serving == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("foo", "'foo' is not a database URL"),
        ("mysql://ann:s3cret@db.example/convhub", "does not store in mysql"),
        ("postgresql+asyncpg://ann:s3cret@db.example/convhub", "does not store in"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
    ],
)
@pytest.mark.parametrize("command", [["serve"], ["accounts", "list"], ["db", "upgrade"]])
def test_a_database_url_convhub_cannot_use_is_one_line(
    url: str,
    words: str,
    command: list[str],
    no_serving: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = one_line(*_run(capsys, *command, "--database-url", url)[::2])
    assert "--database-url" in err and words in err and "sqlite:///PATH" in err
    assert "s3cret" not in err and no_serving == []


def test_a_database_url_from_the_environment_is_named_as_such(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONVHUB_DATABASE_URL", "foo")
    err = one_line(*_run(capsys, "accounts", "list")[::2])
    assert err.startswith("convhub: CONVHUB_DATABASE_URL 'foo' is not a database URL")


@pytest.mark.parametrize("command", [["serve"], ["accounts", "list"], ["db", "upgrade"]])
def test_a_postgresql_nobody_listens_for_is_one_line(
    command: list[str], no_serving: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://ann:s3cret@127.0.0.1:1/convhub"
    err = one_line(*_run(capsys, *command, "--database-url", url)[::2])
    assert "cannot connect to postgresql://ann:***@127.0.0.1:1/convhub" in err
    assert "nothing accepts connections at 127.0.0.1:1" in err and "s3cret" not in err


@pytest.mark.skipif("postgresql" not in ENGINES, reason="the PostgreSQL half is not selected")
@pytest.mark.parametrize("command", [["serve"], ["accounts", "list"], ["db", "upgrade"]])
def test_a_postgresql_database_that_does_not_exist_is_one_line(
    command: list[str], no_serving: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    name = "convhub_missing_" + secrets.token_hex(4)
    url = make_url(POSTGRES_ADMIN_URL).set(database=name, password="s3cret")
    text = url.render_as_string(hide_password=False)
    err = one_line(*_run(capsys, *command, "--database-url", text)[::2])
    assert f"database '{name}' does not exist; create it (createdb" in err
    assert url.render_as_string(hide_password=True) in err and "s3cret" not in err


@pytest.mark.parametrize("command", ADMIN_COMMANDS, ids=" ".join)
def test_admin_commands_never_create_a_sqlite_file(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the default database, sqlite:///convhub.db, is here
    monkeypatch.delenv("CONVHUB_DATABASE_URL", raising=False)
    err = one_line(*_run(capsys, *command)[::2])
    assert f"no database at sqlite:///convhub.db ({tmp_path / 'convhub.db'} does not exist)" in err
    assert "`convhub serve`" in err and "`convhub db upgrade`" in err
    assert list(tmp_path.iterdir()) == []

    other = f"sqlite:///{tmp_path}/elsewhere.db"
    err = one_line(*_run(capsys, *command, "--database-url", other)[::2])
    assert f"`convhub db upgrade --database-url {other}`" in err  # a hint for this database
    assert list(tmp_path.iterdir()) == []


def _with_password(url: str) -> str:
    """The URL with a password, where the engine ignores one: the messages must mask it."""
    if url.startswith("sqlite"):
        return url
    return make_url(url).set(password="s3cret").render_as_string(hide_password=False)


@pytest.mark.parametrize(
    "command", [c for c in ADMIN_COMMANDS if c[1] not in ("history", "downgrade")], ids=" ".join
)
def test_admin_commands_refuse_a_database_without_the_schema(
    command: list[str], empty_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if empty_database_url.startswith("sqlite"):
        migrate.upgrade(empty_database_url, "base")  # the file exists, without convhub's tables
    url = _with_password(empty_database_url)
    target = tmp_path / "copy.db"
    command = [str(target) if c == "copy.db" else c for c in command]
    err = one_line(*_run(capsys, *command, "--database-url", url)[::2])
    if command[1] == "backup" and url.startswith("postgresql"):
        assert "for PostgreSQL use pg_dump" in err  # before it looks at the schema
    else:
        assert f"{mask_url(url)} has no convhub tables: run `convhub db upgrade" in err
    assert "s3cret" not in err and not target.exists()


@pytest.mark.parametrize(
    "command", [c for c in ADMIN_COMMANDS if c[0] != "db"] + [["db", "current"]], ids=" ".join
)
def test_admin_commands_refuse_a_schema_behind_this_convhub(
    command: list[str], empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate.upgrade(empty_database_url, "0003")
    url = _with_password(empty_database_url)
    err = one_line(*_run(capsys, *command, "--database-url", url)[::2])
    assert f"{mask_url(url)} is at schema revision 0003, behind this convhub's" in err
    assert f"`convhub db upgrade --database-url {mask_url(url)}`" in err and "s3cret" not in err


def test_db_current_history_and_upgrade_show_where_a_database_stands(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", empty_database_url)
    head = migrate.head()
    code, out, _ = _run(capsys, "db", "upgrade", "0003", *db)
    assert code == 0 and out == f"{mask_url(empty_database_url)} is at schema revision 0003\n"
    code, out, err = _run(capsys, "db", "history", *db)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines if line.startswith("*")] == [["*", "0003"]]
    assert lines[-1].startswith(f"  {head}") and lines[-1].endswith("(head)")
    assert [line[2:6] for line in lines] == [m.revision for m in migrate.history()]
    one_line(*_run(capsys, "db", "current", *db)[::2])  # behind: refused, as above

    assert _run(capsys, "db", "upgrade", *db)[0] == 0
    code, out, _ = _run(capsys, "db", "current", *db)
    assert code == 0 and out == f"{head} (head)\n"
    _, out, _ = _run(capsys, "db", "history", *db)
    assert [line for line in out.splitlines() if line.startswith("*")] == [
        f"* {head}  {migrate.history()[-1].summary}  (head)"
    ]
    code, out, _ = _run(capsys, "db", "downgrade", "-1", *db)
    assert code == 0 and out.endswith(f"at schema revision {migrate.history()[-2].revision}\n")


@pytest.mark.parametrize("verb", ["upgrade", "downgrade"])
def test_an_unknown_revision_is_one_line_and_touches_nothing(
    verb: str, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line(*_run(capsys, "db", verb, "nosuch", "--database-url", database_url)[::2])
    assert "Can't locate revision identified by 'nosuch'" in err and "db history" in err
    code, out, _ = _run(capsys, "db", "current", "--database-url", database_url)
    assert code == 0 and out == f"{migrate.head()} (head)\n"
    new = tmp_path / "new.db"
    one_line(*_run(capsys, "db", verb, "nosuch", "--database-url", f"sqlite:///{new}")[::2])
    assert not new.exists()


@pytest.mark.skipif("postgresql" not in ENGINES, reason="the PostgreSQL half is not selected")
def test_db_backup_of_postgresql_points_at_pg_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with empty_postgres() as empty:
        migrate.upgrade(empty)
        url = _with_password(empty)
        target = tmp_path / "b.dump"
        err = one_line(*_run(capsys, "db", "backup", str(target), "--database-url", url)[::2])
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=True)
    assert f"for PostgreSQL use pg_dump: pg_dump --format=custom --file={target} '{libpq}'" in err
    assert "pg_restore" in err and "s3cret" not in err and not target.exists()


def test_debug_shows_the_traceback_instead(
    tmp_path: Path, no_serving: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"sqlite:///{tmp_path}/missing.db"
    with pytest.raises(ConfigError, match="no database at"):
        main(["--debug", "accounts", "list", "--database-url", missing])
    with pytest.raises(ConfigError, match="no database at"):
        main(["accounts", "list", "--debug", "--database-url", missing])
    monkeypatch.setenv("CONVHUB_POOL_SIZE", "many")
    with pytest.raises(ConfigError, match="CONVHUB_POOL_SIZE"):
        main(["serve", "--log-level", "debug", "--database-url", missing])


def test_an_unforeseen_error_is_one_line_pointing_at_debug(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: object) -> list[dict[str, object]]:
        raise RuntimeError("boom")

    monkeypatch.setattr(directory, "list_accounts", broken)
    err = one_line(*_run(capsys, "accounts", "list", "--database-url", database_url)[::2])
    assert "unexpected error: RuntimeError: boom (run again with --debug" in err


# =========================================================================== serve's first words


def test_a_first_start_names_the_database_it_is_not_the_default_of(
    empty_database_url: str, no_serving: list[dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    url = _with_password(empty_database_url)
    code, out, err = _run(capsys, "serve", "--database-url", url, "--port", "8123")
    assert code == 0 and [call["port"] for call in no_serving] == [8123]
    assert f"first start on {mask_url(url)}" in out and "s3cret" not in out + err
    printed = dict(line.split() for line in out.splitlines() if line.startswith("  "))
    assert set(printed) == {"AppId", "AccessKey", "SecretKey", "Token"}
    assert f"`convhub keys create --account default --database-url {mask_url(url)}`" in out
    hint = f"`convhub tokens create --account default --user NAME --database-url {mask_url(url)}`"
    assert hint in out

    code, out, _ = _run(capsys, "serve", "--database-url", url)
    assert code == 0 and len(no_serving) == 2
    assert out.count("\n") == 1 and "SecretKey" not in out and printed["SecretKey"] not in out
    assert out.startswith(f"convhub: serving {mask_url(url)}.")
    assert f"`convhub keys create --account default --database-url {mask_url(url)}`" in out
    assert hint in out and "s3cret" not in out


def test_a_later_start_on_the_default_database_shows_plain_commands(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_serving: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "serve")[0] == 0
    code, out, _ = _run(capsys, "serve")
    assert code == 0 and (tmp_path / "convhub.db").exists()
    assert out == (
        "convhub: serving sqlite:///convhub.db. New credentials: "
        "`convhub keys create --account default`, "
        "`convhub tokens create --account default --user NAME`\n"
    )


@pytest.mark.skipif("postgresql" not in ENGINES, reason="the PostgreSQL half is not selected")
def test_serve_warns_of_more_workers_than_cores(
    monkeypatch: pytest.MonkeyPatch,
    no_serving: list[dict[str, object]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    with empty_postgres() as url:
        for workers, warned in (("2", False), ("4", True)):
            code, _out, err = _run(capsys, "serve", "--database-url", url, "--workers", workers)
            assert code == 0, err
            assert ("--workers 4 on 2 cores" in err) is warned, err
    assert [call["workers"] for call in no_serving] == [2, 4]
