"""``python -m benchmarks.inprocess``: the Python cost of one request, with no HTTP server and no
load generator: convhub's ASGI application called directly, in this process, with signed
requests built beforehand.

The wall-clock figure moves with whatever else the machine does. Under
``valgrind --tool=callgrind`` the instructions do not: run it with ``--requests`` N and with
fewer, and the difference of the two totals over the difference of the counts is the
instructions of one request, the same on a busy machine as on a quiet one (``--instructions``
does exactly that). Reads are called one after another; writes all at once, so that the writer
groups them as it does under load (their instruction counts vary with the batches, by ±7%).

``--prefill N`` first writes a table of N conversations as ``make bench`` does
(``benchmarks.prefill``), and ``batch-get`` then sends the requests ``make bench`` sends, each
of 100 IDs drawn from all of the main app's rows, all of them once as a warm-up: the cost of a
request whose conversations are scattered over a large table's (kept) rows.

``create-single`` creates single chats of pairs never seen before, with ``--replays`` (a share)
of its requests replaced by creates of pairs made in the set-up: get-or-creates that answer the
existing chat (``Exist`` true).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import databases, prefill, workload
from convhub.config import Settings, parse_rate_limits
from convhub.server import Convhub

OPERATIONS = (
    "batch-get", "user-conversations", "scan", "messages", "coze-message-list", "modify",
    "create", "create-single",
)  # fmt: skip
READS = ("batch-get", "user-conversations", "scan", "messages", "coze-message-list")
CONVERSATIONS = 300
EXISTING_PAIRS = 300  # single chats made in the set-up, which replays create again
PORT = 8000  # only signed into the Host header; nothing listens
WARM_UP = 40
SCANNED = PAGED = 0  # the set-up's group (by OWNER) that Scan and message pages read


def _scope(raw: bytes) -> tuple[dict[str, Any], bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    request_line, *lines = head.split(b"\r\n")
    method, target, _version = request_line.split(b" ")
    path, _, query = target.partition(b"?")
    headers = [(name.lower(), value) for name, value in (line.split(b": ", 1) for line in lines)]
    return {
        "type": "http", "http_version": "1.1", "method": method.decode(), "scheme": "http",
        "path": path.decode(), "raw_path": path, "query_string": query, "root_path": "",
        "headers": headers, "server": ("127.0.0.1", PORT), "client": ("127.0.0.1", 50000),
    }, body  # fmt: skip


async def _call(app: Convhub, raw: bytes) -> tuple[int, bytes]:
    scope, body = _scope(raw)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _failed(answer: tuple[int, bytes]) -> bool:
    status, body = answer
    coze_failed = body.startswith(b'{"code":') and not body.startswith(b'{"code":0,')
    return status != 200 or b'"Error"' in body or coze_failed


def _pool(
    operation: str,
    tenant: databases.Tenant,
    ids: Sequence[int],
    size: int,
    replays: float = 0.0,
    prefilled: Sequence[int] | None = None,
    coze_listed: str = "",
) -> list[bytes]:
    """The requests ``make bench`` times for the row, from its own pool builders; at least
    ``size`` of them where each may be sent once only (single chats of new pairs)."""
    if operation == "create-single":
        fresh = workload.create_single_pool(tenant, PORT, EXISTING_PAIRS + 1, size)
        again = workload.create_single_pool(tenant, PORT, 1, EXISTING_PAIRS)
        every = round(1 / replays) if replays else 0  # every n-th request is a replay
        return [
            again[i % EXISTING_PAIRS] if every and i % every == 0 else raw
            for i, raw in enumerate(fresh)
        ]
    if operation == "batch-get":
        if prefilled:
            return workload.batch_get_pool(tenant, PORT, prefilled)
        return workload.batch_get_pool(tenant, PORT, ids, size=50)
    if operation == "user-conversations":
        return workload.user_conversations_pool(tenant, PORT)
    if operation == "scan":
        return workload.scan_pool(tenant, PORT, ids[SCANNED])
    if operation == "messages":
        return workload.messages_pool(tenant, PORT, ids[PAGED])
    if operation == "coze-message-list":
        return workload.coze_message_list_pool(tenant, PORT, coze_listed)
    if operation == "modify":
        return workload.modify_pool(tenant, PORT, ids)
    return workload.create_pool(tenant, PORT, size=2_000)


async def _measure(
    engine: str,
    operation: str,
    requests: int,
    rounds: int,
    replays: float = 0.0,
    prefill_size: int = 0,
) -> list[float]:
    with (
        tempfile.TemporaryDirectory() as workdir,
        databases.fresh_database(engine, Path(workdir)) as url,
    ):
        tenant = databases.prepare(url)
        prefilled = None
        if prefill_size:
            placed, _seconds = prefill.prefill(url, tenant, prefill_size, coze_targets=1)
            prefilled = placed.slot_ids(prefill.MAIN_SLOT)
        settings = Settings(database_url=url, rate_limits=parse_rate_limits("*=100000000"))
        app = Convhub(settings)
        try:
            ids = []
            for raw in workload.create_pool(tenant, PORT, size=CONVERSATIONS, app_id=tenant.app_id):
                ids.append(int(workload._result(*await _call(app, raw))["ConversationShortId"]))
            # GetUserConversations lists the groups its user joined, as in make bench's set-up.
            now = time.time()
            for group in ids[-workload.LISTER_CONVERSATIONS :]:
                join = workload._add_call(tenant, PORT, group, workload.LISTER, 1, now)
                if workload._result(*await _call(app, join)).get("FailedUserIds"):
                    raise SystemExit(f"set-up: {workload.LISTER} could not join {group}")
            # Scan pages through a group of SCANNED_MEMBERS members, messages through a group's
            # PAGED_MESSAGES messages, as in make bench's set-up.
            for start in range(0, workload.SCANNED_MEMBERS - 1, workload.ADD_BATCH):
                add = workload._add_call(
                    tenant, PORT, ids[SCANNED], 100_000 + start, workload.ADD_BATCH, now
                )
                if workload._result(*await _call(app, add)).get("FailedUserIds"):
                    raise SystemExit(f"set-up: members could not join {ids[SCANNED]}")
            for i in range(workload.PAGED_MESSAGES):
                send = workload._send_call(tenant, PORT, ids[PAGED], workload.OWNER, f"p {i}", now)
                workload._result(*await _call(app, send))
            listed = ""
            if operation == "coze-message-list":  # a conversation of LIST_MESSAGES, as make bench's
                create = workload.coze_call(
                    tenant, PORT, "POST", "/v1/conversation/create", {"bot_id": workload.COZE_BOT}
                )
                listed = str(workload._coze_answer(*await _call(app, create))["data"]["id"])
                for i in range(workload.LIST_MESSAGES):
                    send = workload._message(tenant, PORT, listed, f"listed {i}")
                    workload._coze_answer(*await _call(app, send))
            if operation == "create-single":  # the pairs that replays create again
                for raw in workload.create_single_pool(tenant, PORT, 1, EXISTING_PAIRS):
                    workload._result(*await _call(app, raw))
            pool = _pool(
                operation, tenant, ids, WARM_UP + requests * rounds, replays, prefilled, listed
            )
            reads = operation in READS
            calls = iter(range(10**9))

            async def some(count: int) -> None:
                chosen = [pool[next(calls) % len(pool)] for _ in range(count)]
                if reads:
                    # Each answer checked and let go at once, as a server sends and frees it:
                    # a round's answers held together (70 MB of BatchGet(100)s) were freed at
                    # its end and handed back to the kernel, and the next round's first touch of
                    # each page faulted (orjson's write of an answer: 19 µs against 1-2).
                    bad = []
                    for raw in chosen:
                        answer = await _call(app, raw)
                        if _failed(answer):
                            bad.append(answer)
                else:
                    answers = await asyncio.gather(*(_call(app, raw) for raw in chosen))
                    bad = [answer for answer in answers if _failed(answer)]
                if bad:
                    raise SystemExit(f"{operation}: {len(bad)} failed, e.g. {bad[0][1][:300]!r}")

            await some(len(pool) if prefilled and operation == "batch-get" else WARM_UP)
            took = []
            for _ in range(rounds):
                started = time.perf_counter()
                await some(requests)
                took.append((time.perf_counter() - started) / requests * 1e6)
            return took
        finally:
            await app.aclose()


def _instructions(args: argparse.Namespace) -> int:
    """Instructions of one request: callgrind totals of two runs, ``--requests`` and 20."""
    totals = []
    for requests in (20, args.requests):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             "-m", "benchmarks.inprocess", "--engine", args.engine, "--operation", args.operation,
             "--requests", str(requests), "--rounds", "1", "--replays", str(args.replays),
             "--prefill", str(args.prefill)],
            capture_output=True, text=True, check=True, env={**os.environ},
        )  # fmt: skip
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit(f"valgrind printed no total:\n{done.stderr[-2000:]}")
        totals.append(int(found.group(1).replace(",", "")))
    per_request: int = (totals[1] - totals[0]) // (args.requests - 20)
    return per_request


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inprocess", description=__doc__)
    parser.add_argument("--engine", choices=databases.ENGINES, default="sqlite")
    parser.add_argument("--operation", choices=OPERATIONS, default="batch-get")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under valgrind instead"
    )
    parser.add_argument(
        "--replays", type=float, default=0.0, help="create-single: share of get-or-creates"
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="conversations written first, as make bench does; batch-get draws its IDs from them",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.replays <= 1:
        parser.error("--replays is a share, from 0 to 1")
    if args.prefill < 0:
        parser.error("--prefill is a number of conversations")
    if args.instructions:
        if args.requests <= 20:
            parser.error("--instructions needs --requests above 20")
        count = _instructions(args)
        print(f"{args.operation} {args.engine}: {count:,} instructions a request")
        return 0
    took = asyncio.run(
        _measure(
            args.engine, args.operation, args.requests, args.rounds, args.replays, args.prefill
        )
    )
    took.sort()
    print(
        f"{args.operation} {args.engine}: {took[len(took) // 2]:.0f} µs a request "
        f"(median of {len(took)} rounds of {args.requests}; fastest {took[0]:.0f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
