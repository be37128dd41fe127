"""`keyvault.management.progress.Progress`: periodic lines in a log, a bar on a terminal."""

import re
import types
from io import StringIO

import pytest

from keyvault.management import progress as progress_module
from keyvault.management.progress import Progress


class Terminal(StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A controllable monotonic clock for the module: `clock.now = ...`."""
    clock = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(progress_module, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    return clock


def test_a_log_gets_periodic_lines_with_counts_and_rate(clock):
    stream = StringIO()
    progress = Progress(100, label="re-wrap", stream=stream, every_seconds=5)

    clock.now += 1
    progress.advance(10)  # the first line comes at once
    clock.now += 1
    progress.advance(10)  # 1 s later: too soon for another line
    clock.now += 4
    progress.advance(40)  # 5 s after the first line
    clock.now += 2
    progress.advance(40)  # done: always a last line
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert stream.getvalue().endswith("\n")
    assert "\r" not in stream.getvalue()
    assert len(lines) == 3
    assert re.fullmatch(r"re-wrap \[#{3}\.{27}\]\s+10\.0% 10/100  10 rows/s", lines[0])
    assert re.fullmatch(r"re-wrap \[#{18}\.{12}\]\s+60\.0% 60/100  10 rows/s", lines[1])
    assert re.fullmatch(r"re-wrap \[#{30}\]\s+100\.0% 100/100  12 rows/s", lines[2])


def test_a_terminal_gets_one_line_redrawn_with_carriage_returns(clock):
    stream = Terminal()
    progress = Progress(4, label="verify", stream=stream)

    for _ in range(4):
        clock.now += 0.5
        progress.advance(1)
    assert "\n" not in stream.getvalue()
    progress.finish()

    output = stream.getvalue()
    assert output.count("\r") == 4
    assert output.endswith("\n")
    frames = output.strip("\n").split("\r")[1:]
    assert [re.search(r"(\d+)/4", frame).group(1) for frame in frames] == ["1", "2", "3", "4"]
    assert frames[-1].endswith("4/4  2 rows/s")
    assert "100.0%" in frames[-1]


def test_nothing_to_do_prints_a_full_bar_and_no_division_by_zero(clock):
    stream = StringIO()
    progress = Progress(0, label="rekey", stream=stream)
    progress.advance(0)
    assert "[" + "#" * 30 + "]" in stream.getvalue()
    assert progress.rate == 0.0


def test_elapsed_and_rate(clock):
    progress = Progress(10, label="x", stream=StringIO())
    assert progress.rate == 0.0  # no time has passed
    clock.now += 2
    progress.advance(5)
    assert progress.elapsed == 2
    assert progress.rate == 2.5


def test_the_default_stream_is_stderr(capsys):
    progress = Progress(1, label="default")
    progress.advance(1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "default [" in captured.err
