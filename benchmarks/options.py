"""The command line of ``python -m benchmarks.run`` (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from benchmarks import workload
from benchmarks.databases import ENGINES
from benchmarks.launch import HTTP_SERVERS
from benchmarks.prefill import minimum_size

# --operations names each row by a short name
SLUGS = {
    "create": workload.CREATE,
    "create-single": workload.CREATE_SINGLE,
    "modify": workload.MODIFY,
    "batch-get": workload.BATCH_GET,
    "batch-get-beside-modify": workload.BATCH_GET_BESIDE_MODIFY,
    "user-conversations": workload.USER_CONVERSATIONS,
    "batch-add": workload.BATCH_ADD,
    "scan": workload.SCAN,
    "send": workload.SEND,
    "messages": workload.MESSAGES,
    "coze-rename": workload.COZE_RENAME,
    "coze-message-create": workload.COZE_MESSAGE_CREATE,
    "coze-message-list": workload.COZE_MESSAGE_LIST,
}
MAX_SIZE = 100_000_000


def listed(kind: Callable[[str], object]) -> Callable[[str], list[object]]:
    """An argparse type: a comma-separated list of ``kind``."""

    def parse(text: str) -> list[object]:
        try:
            return [kind(item.strip()) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}") from None

    return parse


def parse_args(argv: Sequence[str] | None, description: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=description)
    add = parser.add_argument
    add("--engines", type=listed(str), default=list(ENGINES), help="sqlite,postgresql")
    add("--duration", type=float, default=10.0, help="seconds per measurement")
    add("--connections", type=int, default=64)
    add("--runs", type=int, default=3)
    add("--workers", type=listed(int), default=[1], help="worker counts, e.g. 1,2,4")
    add("--warmup", type=float, default=2.0, help="seconds before each window")
    add("--generators", type=int, default=1, help="load-generator processes")
    add("--conversations", type=int, default=2000, help="made through the API before timing")
    add("--modify-targets", type=int, default=1000, help="N renamed by Modify")
    add(
        "--coze-targets",
        type=int,
        default=1000,
        help="N Coze conversations renamed by Coze rename and given the timed messages",
    )
    add(
        "--sizes",
        type=listed(int),
        default=[10_000],
        help="conversations prefilled before each table's windows, e.g. 10000,1000000,10000000 "
        "(0: none, only the API-made set-up)",
    )
    add(
        "--operations",
        type=listed(str),
        default=list(SLUGS),
        help=f"rows to measure: {','.join(SLUGS)}",
    )
    add("--http-server", choices=HTTP_SERVERS, default="uvicorn", help="what serves convhub")
    add(
        "--profile",
        action="store_true",
        help="after each server's timed windows, one more window per row under py-spy",
    )
    add(
        "--paired-ceiling",
        action="store_true",
        help="before each timed window, one of the uvicorn ceiling with as many workers; each "
        "row's ratio is then the median of its runs' ratios to the ceiling just before them",
    )
    args = parser.parse_args(argv)
    _validate(parser, args)
    return args


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.engines or any(e not in ENGINES for e in args.engines):
        parser.error(f"--engines takes a comma-separated subset of {','.join(ENGINES)}")
    if not (args.duration > 0 and args.warmup >= 0 and args.duration + args.warmup <= 600):
        parser.error("need 0 < duration and duration + warmup <= 600 s (signatures last 900 s)")
    if not 1 <= args.generators <= args.connections <= 4096:
        parser.error("need 1 <= generators <= connections <= 4096")
    if not 1 <= args.runs <= 50:
        parser.error("need 1 <= runs <= 50")
    if not args.workers or any(not 1 <= w <= 64 for w in args.workers):
        parser.error("--workers takes worker counts from 1 to 64, e.g. 1,2,4")
    if not workload.BATCH <= args.modify_targets <= args.conversations <= 100_000:
        parser.error(f"need {workload.BATCH} <= modify-targets <= conversations <= 100000")
    if not 1 <= args.coze_targets <= 100_000:
        parser.error("need 1 <= coze-targets <= 100000")
    least = minimum_size(args.modify_targets, args.coze_targets, workload.BATCH)
    if not args.sizes or any(s != 0 and not least <= s <= MAX_SIZE for s in args.sizes):
        parser.error(
            f"--sizes takes 0 or table sizes from {least:,} (room for the Modify and Coze "
            f"targets in each app) to {MAX_SIZE:,}"
        )
    unknown = [o for o in args.operations if o not in SLUGS]
    if not args.operations or unknown:
        parser.error(f"--operations takes a comma-separated subset of {','.join(SLUGS)}")
    args.workers = list(dict.fromkeys(args.workers))
    args.sizes = list(dict.fromkeys(args.sizes))
