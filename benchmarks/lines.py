"""The prose under the table: CPU, other processes, what each row does, and what to look at."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks import workload
from benchmarks.measure import Measurement
from benchmarks.prefill import APPS, GROUPS_PER_OWNER
from benchmarks.report import CEILING, where

GENERATOR_CHECK_SECONDS = 5.0
GENERATOR_HEADROOM = 1.2  # the generator must reach this multiple of the ceiling's rate
# convhub serve's warning for several workers without Redis: the limits are per worker then,
# which changes nothing here (they are set never to trip).
_EXPECTED = "several workers without --redis-url"


def brief(m: Measurement) -> str:
    gen = "/".join(f"{c:.0f}%" for c in m.generator_cpu_percent)
    batches = (
        f"writer {m.writer_batches_per_second:,.0f} batches/s of {m.writes_per_batch:.1f} writes, "
        if m.writer_batches_per_second
        else ""
    )
    apart = (
        f"(writes p50 {m.writes_p50_ms:.2f}, p99 {m.writes_p99_ms:.2f} ms; reads p50 "
        f"{m.reads_p50_ms:.2f}, p99 {m.reads_p99_ms:.2f} ms), "
        if m.writes_p50_ms
        else ""
    )
    threads = "/".join(f"{name} {p:.0f}%" for name, p in _busy(m.server_thread_cpu_percent))
    return (
        f"  {m.requests_per_second:,.0f} req/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms, "
        f"{apart}errors {m.error_count}, CPU server {m.server_cpu_percent:.0f}% "
        f"({threads or 'threads unread'}) gen {gen} "
        f"switches {m.switches_per_request:.1f}/req "
        f"{batches}box {m.machine_cpu_percent:.0f}%, RSS {m.server_rss_kb / 1024:,.0f} MiB in "
        f"{len(m.server_processes)} processes, connections {'/'.join(map(str, m.connections))}, "
        f"others {m.other_cpu_percent}"
    )


def _by_row(measurements: Iterable[Measurement]) -> dict[str, list[Measurement]]:
    """The measurements of each row (engine, server, workers, table, operation), in order."""
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(where(m), []).append(m)
    return groups


def _cpu_lines(measurements: Sequence[Measurement]) -> list[str]:
    cells = []
    for name, group in _by_row(measurements).items():
        server_cpu = statistics.median(m.server_cpu_percent for m in group)
        gen = statistics.median(max(m.generator_cpu_percent) for m in group)
        box = statistics.median(m.machine_cpu_percent for m in group)
        switches = statistics.median(m.switches_per_request for m in group)
        cells.append(f"{name} {server_cpu:.0f}/{gen:.0f}/{box:.0f}/{switches:.1f}")
    return [
        "CPU in the window, medians (server tree % of one core / generator % / whole box % / "
        "the server's context switches a request, all its threads): " + "; ".join(cells)
    ]


def _busy(shares: Mapping[str, float]) -> list[tuple[str, float]]:
    """The threads that used at least 1% of a core, busiest first (by name when equal)."""
    return sorted(((t, p) for t, p in shares.items() if p >= 1), key=lambda tp: (-tp[1], tp[0]))


def _thread_lines(measurements: Sequence[Measurement]) -> list[str]:
    """The server's CPU by thread: with one worker the event loop and the writer take turns
    (the loop waits for each batch's commit), so the writer's share is its share of the time."""
    cells = []
    for name, group in _by_row(m for m in measurements if m.server_thread_cpu_percent).items():
        names = {thread for m in group for thread in m.server_thread_cpu_percent}
        shares = {
            thread: statistics.median(m.server_thread_cpu_percent.get(thread, 0.0) for m in group)
            for thread in names
        }
        busy = _busy(shares)
        if busy:
            cells.append(f"{name} " + " / ".join(f"{t} {p:.0f}" for t, p in busy))
    if not cells:
        return []
    return [
        "The server's CPU by thread, medians (% of one core; main = each process's event loop, "
        "the others named as convhub names its threads): " + "; ".join(cells)
    ]


def _batch_lines(measurements: Sequence[Measurement]) -> list[str]:
    """The writers' group commits of each row that wrote: with 64 connections and one worker,
    a batch of about 64 writes means the event loop and the writer take turns (every request is
    in the batch, so the loop waits for its commit)."""
    groups = _by_row(m for m in measurements if m.writer_batches_per_second)
    if not groups:
        return []
    cells = []
    for name, group in groups.items():
        batches = statistics.median(m.writer_batches_per_second for m in group)
        writes = statistics.median(m.writes_per_batch for m in group)
        cells.append(f"{name} {batches:,.0f}/{writes:.1f}")
    return [
        "The writers' group commits in the window, medians (batches a second, all workers / "
        "writes a batch; from /metrics): " + "; ".join(cells)
    ]


def _apart_lines(measurements: Sequence[Measurement]) -> list[str]:
    """The latencies of a mixed row's writes and of its reads, apart: the row's own p99 is
    its writes' when they are slower, one request in ten."""
    groups = _by_row(m for m in measurements if m.writes_p50_ms)
    if not groups:
        return []
    median = statistics.median
    cells = []
    for name, group in groups.items():
        cells.append(
            f"{name} writes {median(m.writes_p50_ms for m in group):.1f}/"
            f"{median(m.writes_p99_ms for m in group):.1f}, reads "
            f"{median(m.reads_p50_ms for m in group):.1f}/"
            f"{median(m.reads_p99_ms for m in group):.1f}"
        )
    return [
        "Reads beside writes, each kind's latency apart, medians (p50/p99 ms): " + "; ".join(cells)
    ]


def _memory_lines(measurements: Sequence[Measurement]) -> list[str]:
    """Per-process resident memory of each server, from its last window."""
    last: dict[str, Measurement] = {}
    for m in measurements:
        name = f"{m.engine} {m.http_server} w{m.workers}"
        last[name if m.engine == CEILING else f"{name} table {m.table:,}"] = m
    cells = []
    for name, m in last.items():
        each = "+".join(f"{int(str(p['rss_kb'])) / 1024:.0f}" for p in m.server_processes)
        cells.append(f"{name}: {each}")
    return ["Server RSS per process at the end of its last window (MiB): " + "; ".join(cells)]


def _others_lines(measurements: Sequence[Measurement]) -> list[str]:
    """The busiest other processes (postgres is the database itself) in any window."""
    peaks: dict[str, tuple[float, str]] = {}
    for m in measurements:
        for name, percent in m.other_cpu_percent.items():
            if percent > peaks.get(name, (0.0, ""))[0]:
                peaks[name] = (percent, f"{where(m)} run {m.run}")
    top = sorted(peaks.items(), key=lambda item: -item[1][0])[:6]
    if not top:
        return ["Other processes: none used 1% of a core in any window."]
    cells = "; ".join(f"{name} {percent:.0f}% ({at})" for name, (percent, at) in top)
    return [f"Other processes, peak % of one core in a window (postgres = the database): {cells}"]


def extra_lines(
    check: dict[str, Any],
    ceiling_rps: float,
    measurements: Sequence[Measurement],
    args: argparse.Namespace,
    prefills: Sequence[dict[str, Any]],
) -> list[str]:
    gen_cpu = "/".join(f"{c:.0f}%" for c in check["generator_cpu_percent"])
    headroom = check["requests_per_second"] / ceiling_rps if ceiling_rps else 0.0
    filled = "; ".join(
        f"{p['engine']} {p['table']:,} in {p['seconds']:.1f} s"
        f" (then written to disk in {p['settled']:.1f} s)"
        for p in prefills
        if p["table"]
    )
    return [
        f"Load generator alone (canned-response server, {GENERATOR_CHECK_SECONDS:g} s): "
        f"{check['requests_per_second']:,.0f} req/s at {gen_cpu} generator CPU "
        f"(canned server {check['null_server_cpu_percent']:.0f}%; a lower bound unless the "
        "generator is near 100%), "
        f"{headroom:.2f}x the fastest ceiling's median ({ceiling_rps:,.0f} req/s).",
        *_cpu_lines(measurements),
        *_thread_lines(measurements),
        *_batch_lines(measurements),
        *_apart_lines(measurements),
        *_memory_lines(measurements),
        *_others_lines(measurements),
        "Ratio = req/s / req/s of the uvicorn ceiling with as many workers, measured in this "
        "invocation; x vs the fewest workers: req/s over the same row's with the fewest, beside "
        "the same for the ceiling on the same HTTP server.",
        "Table: conversations prefilled in bulk before the set-up (groups, each with its owner's "
        f"participant row, over {APPS} apps, at most {GROUPS_PER_OWNER} per owner; 1 app in "
        f"{APPS} holds Coze conversations), then the API-made set-up of "
        f"{args.conversations} groups and the rows below; the timed creates are deleted after "
        f"each Create window. Prefill: {filled or 'none'}.",
        "Create: signed group chats (ConversationType 2) in an app of their own, each by one of "
        f"{workload.CREATE_GROUP_POOL} owners. {workload.CREATE_SINGLE}: single chats "
        "(ConversationType 1, OwnerUserId and OtherUserId) in that app, every request a pair of "
        "users never seen before (an answer with Exist true, a replay, counts as an error). "
        f"Modify: renames one of {args.modify_targets} conversations (alternating names), "
        "spread evenly over the prefilled table (with no prefill: the API-made ones). "
        "BatchGet(100): 100 existing IDs drawn from all of the main app's prefilled rows "
        f"(no prefill: of the {args.conversations} made), SkipMemberCount left at its default. "
        f"{workload.BATCH_GET_BESIDE_MODIFY}: those BatchGet(100)s, with one of the Modifies "
        f"amid each {workload.BESIDE_WRITES - 1} (with several workers, readers meet the other "
        "processes' writes).",
        "Coze rows (Authorization: Bearer token of user bench, in an app of its own): "
        f"rename = PUT /v1/conversations/{{id}} of one of {args.coze_targets} conversations "
        "spread over the prefilled table (no prefill: made through the API), alternating names; "
        "message create = POST /v1/conversation/message/create, a user text message into "
        f"{args.coze_targets} API-made conversations in turn; message list("
        f"{workload.LIST_LIMIT}) = POST /v1/conversation/message/list, newest "
        f"{workload.LIST_LIMIT} of a conversation of {workload.LIST_MESSAGES} messages.",
    ]


def paired_lines(paired: Sequence[Measurement]) -> list[str]:
    """What the ceiling made in the windows just before convhub's (``--paired-ceiling``): how
    far the machine moved while the rows were measured."""
    found = []
    for workers in sorted({m.workers for m in paired}):
        rates = sorted(m.requests_per_second for m in paired if m.workers == workers)
        found.append(
            f"The ceiling just before each window (--paired-ceiling), {workers} worker(s): "
            f"{len(rates)} windows, median {statistics.median(rates):,.0f} req/s, from "
            f"{rates[0]:,.0f} to {rates[-1]:,.0f}; each row's ratio is the median of its runs' "
            "ratios to these."
        )
    return found


def _contention(measurements: Sequence[Measurement]) -> list[str]:
    """One line when processes other than the benchmark's (and the database) took CPU."""
    busy = [
        (m, {n: p for n, p in m.other_cpu_percent.items() if n != "postgres" and p >= 15})
        for m in measurements
    ]
    hit = [(m, b) for m, b in busy if b]
    if not hit:
        return []
    m, worst = max(hit, key=lambda item: max(item[1].values()))
    name = max(worst, key=lambda n: worst[n])
    return [
        f"other processes on the box used >= 15% of a core in {len(hit)} of {len(busy)} "
        f"windows (worst: {name} {worst[name]:.0f}% in {where(m)} run {m.run}); "
        "figures are noisier than on a quiet box, see other_cpu_percent in latest.json"
    ]


def warnings(
    check: dict[str, Any],
    ceiling_rps: float,
    code_changed: bool,
    server_logs: dict[str, str],
    measurements: Sequence[Measurement],
    found: Sequence[str],
) -> list[str]:
    lines = list(found)
    if check["requests_per_second"] < GENERATOR_HEADROOM * ceiling_rps or check["errors"]:
        lines.append(
            "the load generator may be the bottleneck: alone it reached only "
            f"{check['requests_per_second']:,.0f} req/s ({check['errors']} errors)"
        )
    if code_changed:
        lines.append("src/convhub changed while the benchmark ran: results mix code versions")
    lines += _contention(measurements)
    for name, tail in server_logs.items():
        said = "\n".join(line for line in tail.splitlines() if _EXPECTED not in line).strip()
        if said:
            lines.append(f"{name} server log (tail): {said[-600:]!r}")
    return lines
