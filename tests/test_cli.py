from __future__ import annotations

import json
import secrets

import pytest

from convhub.cli import main
from convhub.store.engine import create_database_engine
from tests import admin


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
