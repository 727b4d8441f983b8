"""Waiting out a store that stops answering (stores/outage.py), without a network: a
call that fails as the store would, and the job's watch."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cssm_desktop.config import parse_config
from cssm_desktop.core.parallel import each
from cssm_desktop.core.progress import CancelToken, Event, StoreBack, StoreWaiting
from cssm_desktop.core.progress import waiting_for_stores as watched
from cssm_desktop.core.streams import Pipeline
from cssm_desktop.errors import UNREACHABLE, ConfigError, StoreError
from cssm_desktop.stores.outage import Outage
from cssm_desktop.units import seconds


def _flaky(failures: int, code: str | None = UNREACHABLE) -> tuple[list[int], object]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise StoreError("b2", "cannot reach endpoint", code)
        return "ok"
    return calls, call


def test_outside_a_job_a_silent_store_fails_at_once() -> None:
    calls, call = _flaky(1)
    with pytest.raises(StoreError):
        Outage("b2", wait=60).ride(call)  # type: ignore[arg-type]
    assert len(calls) == 1


def test_a_job_waits_says_so_and_hears_when_the_store_is_back() -> None:
    events: list[Event] = []
    token = CancelToken()
    slept: list[float] = []
    calls, call = _flaky(3)
    outage = Outage("b2", wait=60)
    # Sleeping is the token's: a cancel wakes it. Counted here, not slept.
    token.sleep = lambda s: bool(slept.append(s))  # type: ignore[method-assign]
    with watched(events.append, token):
        assert outage.ride(call) == "ok"  # type: ignore[arg-type]
    assert len(calls) == 4 and slept == [1.0, 2.0, 4.0]
    assert [type(e) for e in events] == [StoreWaiting] * 3 + [StoreBack]
    assert all(e.store == "b2" and e.limit == 60 for e in events[:3])  # type: ignore[union-attr]
    assert outage.since is None


def test_a_refusal_is_not_an_outage() -> None:
    events: list[Event] = []
    calls, call = _flaky(1, code="AccessDenied")
    with watched(events.append, CancelToken()), pytest.raises(StoreError):
        Outage("b2", wait=60).ride(call)  # type: ignore[arg-type]
    assert len(calls) == 1 and events == []


def test_a_cancel_ends_the_wait_at_once() -> None:
    token = CancelToken()
    _, call = _flaky(10**6)
    started = threading.Event()

    def listen(event: Event) -> None:
        if isinstance(event, StoreWaiting):
            started.set()
    result: list[BaseException] = []

    def run() -> None:
        with watched(listen, token):
            try:
                Outage("b2", wait=3600).ride(call)  # type: ignore[arg-type]
            except StoreError as exc:
                result.append(exc)
    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(10)
    token.cancel()
    thread.join(10)
    assert not thread.is_alive() and isinstance(result[0], StoreError)


def test_a_store_waited_out_is_not_waited_for_again_until_it_answers() -> None:
    token = CancelToken()
    outage = Outage("b2", wait=0.05)
    _, down = _flaky(10**6)
    with watched(lambda _e: None, token):
        with pytest.raises(StoreError):
            outage.ride(down)  # type: ignore[arg-type]
        calls, again = _flaky(10**6)
        with pytest.raises(StoreError):
            outage.ride(again)  # type: ignore[arg-type]
        assert len(calls) == 1      # no wait the second time: the outage is old
        _, back = _flaky(0)
        assert outage.ride(back) == "ok"  # type: ignore[arg-type]
    assert outage.since is None     # answered: the next outage is waited for anew


def test_the_watch_reaches_pipeline_stages_and_store_threads() -> None:
    """The calls that wait run on stage threads and pool threads: they see the job's watch."""
    events: list[Event] = []
    token = CancelToken()
    token.sleep = lambda _s: False  # type: ignore[method-assign]

    def stage() -> None:
        _, call = _flaky(1)
        Outage("s1").ride(call)  # type: ignore[arg-type]

    def in_pool(name: str) -> str:
        _, call = _flaky(1)
        return Outage(name).ride(call)  # type: ignore[arg-type]
    with watched(events.append, token):
        pipe = Pipeline(token)
        pipe.spawn(stage)
        pipe.join()
        assert each(in_pool, ["p1", "p2"]) == ["ok", "ok"]
    assert {e.store for e in events if isinstance(e, StoreBack)} == {"s1", "p1", "p2"}


def test_outage_wait_is_read_checked_and_written(tmp_path: Path) -> None:
    base = ('[[store]]\nname = "a"\ntype = "folder"\npath = "a"\n'
            '[[store]]\nname = "b"\ntype = "folder"\npath = "b"\n')
    cfg = parse_config(("threshold = 2\noutage_wait = 90\n" + base).encode())
    assert cfg.outage_wait == 90
    for bad in ("-1", "86401", '"5 min"', "true"):
        with pytest.raises(ConfigError, match="outage_wait"):
            parse_config((f"threshold = 2\noutage_wait = {bad}\n" + base).encode())
    from cssm_desktop.config import dump_config
    assert parse_config(dump_config(cfg).encode()).outage_wait == 90


def test_seconds_reads_as_a_person_says_it() -> None:
    assert [seconds(s) for s in (0.4, 12, 60, 250, 3600, 3900)] == \
        ["0 s", "12 s", "1 min", "4 min 10 s", "1 h", "1 h 5 min"]


def test_the_cli_line_says_it_once_and_counts_up_on_a_terminal() -> None:
    import io

    from cssm_desktop.cli_progress import ProgressBar

    for terminal in (False, True):
        out = io.StringIO()
        bar = ProgressBar(out, enabled=terminal)
        for since in (0.2, 3, 8):
            bar(StoreWaiting("b2", since, 300))
        bar(StoreBack("b2", 9.4))
        text = out.getvalue()
        first = "waiting for store 'b2', which stopped answering (up to 5 min, then the " \
                "upload goes on without it)"
        assert text.count(first) == (3 if terminal else 1)
        assert ("… 8 s" in text) is terminal
        assert text.endswith("store 'b2' answers again (after 9 s); going on\n")
