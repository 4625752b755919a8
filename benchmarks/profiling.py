"""py-spy profiles of a server, taken in windows of their own after the timed ones.

``py-spy record --pid <server> --subprocesses --format raw --gil`` samples every process of the
server tree (uvicorn's or granian's workers too) and writes collapsed stacks: one line per
distinct stack, ``frame;frame;...;leaf count``, each frame ``function (file:line)``, the first
ones naming the processes. A function's own time is the samples in which it is the leaf.

``--gil``: only the thread holding the GIL is sampled, so a profile shows where Python's CPU
goes. Without it a thread waiting to take the GIL back is charged to the C call it is returning
from (an HMAC of 200 bytes came out at 12% of a Create profile), and the writer's disk syncs and
database round trips, which do not hold the GIL, crowd the picture; they are measured by the
windows' req/s and latency instead. A leaf in ``WAITING`` is a thread blocked on a queue, a lock
or the database's answer all the same, counted apart, so that the shares are of busy samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_RATE = 100  # samples per second per process
_LINE = re.compile(r":\d+\)$")
# Leaves that are a thread waiting, not working (py-spy samples some of them all the same).
WAITING = {
    "_worker (concurrent/futures/thread.py)": "idle pool threads",
    "Condition.wait (threading.py)": "threads waiting on a lock",
    "Event.wait (threading.py)": "threads waiting on a lock",
    "Thread._wait_for_tstate_lock (threading.py)": "threads waiting on a lock",
    "Thread.join (threading.py)": "threads waiting on a lock",
    "Connection.wait (psycopg/connection.py)": "waiting for PostgreSQL",
}


def executable() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def problem(pid: int) -> str | None:
    """Why py-spy cannot sample ``pid`` here (not installed, no ptrace permission), or None."""
    spy = executable()
    if spy is None:
        return "py-spy is not installed (it is in the dev extra: pip install -e '.[dev]')"
    try:
        done = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"py-spy dump failed: {error}"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-400:]
        hint = ""
        if "ermission" in said or "ptrace" in said.lower():
            hint = (
                " (py-spy needs ptrace: run as root, or with CAP_SYS_PTRACE, or with "
                "kernel.yama.ptrace_scope=0)"
            )
        return f"py-spy cannot sample the server: {said!r}{hint}"
    return None


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` and its children for ``seconds``, into ``out``."""
    spy = executable()
    assert spy is not None  # checked by problem()
    duration = str(max(1, round(seconds)))
    argv = [
        spy, "record", "--pid", str(pid), "--subprocesses", "--duration", duration,
        "--rate", str(_RATE), "--format", "raw", "--output", str(out), "--gil",
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen[bytes], timeout: float) -> str:
    """Wait for a recording to end; what py-spy said if it failed, else ""."""
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return "py-spy did not finish in time"
    if process.returncode != 0:
        return out.decode("utf-8", "replace").strip()[-400:]
    return ""


def _function(frame: str) -> str:
    """``handle (convhub/server.py:120)`` -> ``handle (convhub/server.py)``."""
    return _LINE.sub(")", frame.strip())


@dataclass(frozen=True, slots=True)
class Profile:
    busy: int  # samples whose leaf is a Python function at work
    top: list[tuple[str, int]]  # the functions with the most own samples among those
    waiting: dict[str, int]  # samples of waiting threads, by what they wait for


def read(raw: Path, count: int = 10) -> Profile:
    own: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        if leaf.startswith("process "):
            continue  # a thread with no Python frame (a native one)
        function = _function(leaf)
        if function in WAITING:
            waiting[WAITING[function]] += int(samples)
        else:
            own[function] += int(samples)
    return Profile(sum(own.values()), own.most_common(count), dict(waiting.most_common()))


def summary(profile: Profile) -> str:
    if not profile.busy:
        return "no busy samples"
    top = "; ".join(f"{name} {100 * n / profile.busy:.1f}%" for name, n in profile.top)
    waits = ", ".join(f"{what} {n}" for what, n in profile.waiting.items())
    return top + (f" (samples of waiting threads, left out: {waits})" if waits else "")
