"""`mnist monitor`'s exit status is a contract with schedulers and alerts: 1 means drift only."""

from __future__ import annotations

import pytest

from mnist_pipeline.ops import monitor
from tests.support import run_mnist


def test_a_monitor_crash_exits_2_never_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 means "drift" to a scheduler: an internal failure must not look like one."""

    def crash(args: monitor.CheckOptions) -> int:
        raise KeyError("a column the code expected")

    monkeypatch.setattr(monitor, "check", crash)
    assert run_mnist("monitor") == 2
    err = capsys.readouterr().err
    assert err == "mnist monitor: internal error: KeyError: 'a column the code expected'\n"
