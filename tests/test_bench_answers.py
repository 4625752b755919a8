"""``benchmarks.answers`` serves the ceiling through each HTTP protocol in turn and reports the
server's CPU an answer of each."""

from __future__ import annotations

import pytest
from benchmarks import answers


def test_each_protocol_is_measured_in_alternating_windows() -> None:
    windows = answers.alternate(rounds=2, duration=1.0)
    assert [w.protocol for w in windows] == ["uvicorn", "convhub", "convhub", "uvicorn"]
    assert all(w.requests_per_second > 100 and 0 < w.cpu_us < 10_000 for w in windows)
    report = answers.report(windows)
    assert report.count("\n") == 4
    assert "| uvicorn | 2 | " in report and "| convhub | 1 | " in report


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--rounds", "0"], "--rounds takes 1 or more"),
        (["--duration", "0"], "--duration takes a number of seconds above 0"),
        (["--rounds", "x"], "invalid int value"),
    ],
)
def test_a_mistyped_option_is_one_line_before_anything_runs(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        answers.main(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err
