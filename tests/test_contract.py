"""The engine's contract with its faces: a bug is a bug (never "a damaged store"), and
errors reach the CLI as one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cssm_desktop.engine import Engine
from cssm_desktop.errors import CssmError
from cssm_desktop.stores.folder import FolderStore

from .conftest import PASSWORD, folder_stores, write_config


@pytest.fixture(autouse=True)
def _each_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at one file's own objects in the stores: every file is stored
    alone here (small files in packs are tested in test_packs.py)."""
    monkeypatch.setattr("cssm_desktop.engine.SMALL_FILE", 0)



class _BuggyReader(FolderStore):
    """A store whose reader has a programming error (not a store failure)."""

    def open_read(self, key: str, offset: int = 0):
        if "/data/" in key:
            raise TypeError("injected bug")
        return super().open_read(key, offset)


def _engine_with_bug(folder_engine: Engine) -> Engine:
    stores = [FolderStore(s.name, s.path or "") for s in folder_engine.config.stores]
    stores[1] = _BuggyReader(stores[1].name, stores[1].root)
    engine = Engine(folder_engine.config, catalog_path=folder_engine.catalog.path,
                    stores=stores)
    engine.unlock(PASSWORD)
    return engine


def test_an_unexpected_exception_in_a_store_is_a_bug_not_damage(
        folder_engine: Engine, tmp_path: Path) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(50_000))
    (res,) = folder_engine.put([src])
    assert res.stored is not None
    engine = _engine_with_bug(folder_engine)
    entry = engine.resolve(res.stored.id_hex)
    with pytest.raises(TypeError, match="injected bug"):
        engine.get(entry, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(TypeError):
        engine.verify()
    with pytest.raises(TypeError):
        engine.repair()


def test_the_cli_reports_a_bug_in_one_line_and_logs_its_stack(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from cssm_desktop import cli
    from cssm_desktop.config import Config

    cfg = write_config(tmp_path / "c.toml",
                       Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    assert cli.main(["--config", str(cfg), "init"]) == 0

    def broken(_args):
        raise ZeroDivisionError("secret" + "-name.pdf")   # as a user's file name would

    monkeypatch.setattr(cli, "cmd_ls", broken)
    capsys.readouterr()
    assert cli.main(["--config", str(cfg), "ls"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected ZeroDivisionError (a bug" in err
    (record,) = [r for r in caplog.records if "crashed" in r.getMessage()]
    logged = record.getMessage()
    assert "in broken" in logged and "test_contract.py" in logged   # the stack
    assert "secret-name.pdf" not in logged                            # not the message


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    import subprocess
    import sys

    from cssm_desktop.config import Config

    cfg = write_config(tmp_path / "c.toml",
                       Config(stores=folder_stores(tmp_path / "stores"), threshold=3))
    env = {**os.environ, "CSSM_PASSWORD": PASSWORD}
    run = [sys.executable, "-m", "cssm_desktop.cli", "--config", str(cfg)]
    assert subprocess.run([*run, "init"], env=env, capture_output=True).returncode == 0
    src = tmp_path / "a.txt"
    src.write_bytes(b"x")
    assert subprocess.run([*run, "put", str(src)], env=env, capture_output=True).returncode == 0
    # `cssm ls | head -0`: the reader has gone before anything is written.
    proc = subprocess.Popen([*run, "ls"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert err == b"" and proc.returncode == 141


# ---------------------------------------------------------------- one cancel contract

class _CancelOn:
    """A listener that cancels the job on the first event it is told to, and notes when."""

    def __init__(self, when) -> None:
        from cssm_desktop.core.progress import CancelToken

        self.token, self.when, self.at = CancelToken(), when, 0.0

    def __call__(self, event) -> None:
        import time

        if not self.token.cancelled and self.when(event):
            self.at = time.monotonic()
            self.token.cancel()


def _cancelled_within_a_second(run, listener: _CancelOn) -> None:
    import time

    from cssm_desktop.errors import Cancelled

    with pytest.raises(Cancelled):
        run(listener=listener, cancel=listener.token)
    assert listener.at and time.monotonic() - listener.at < 1.0


def _big_file(engine: Engine, tmp_path: Path, name: str = "big.bin") -> str:
    src = tmp_path / name
    src.write_bytes(os.urandom(24 * 1024 * 1024))
    (res,) = engine.put([src])
    assert res.stored is not None
    return res.stored.id_hex


def test_cancel_stops_verify_mid_file(folder_engine: Engine, tmp_path: Path) -> None:
    from cssm_desktop.core.progress import Step

    _big_file(folder_engine, tmp_path)
    _cancelled_within_a_second(folder_engine.verify,
                               _CancelOn(lambda e: isinstance(e, Step)))


def test_cancel_stops_repair_mid_write_and_leaves_nothing(folder_engine: Engine,
                                                          tmp_path: Path) -> None:
    from cssm_desktop.core.progress import StoreProgress

    fid = _big_file(folder_engine, tmp_path)
    store = Path(folder_engine.config.stores[4].path or "")
    part = next(store.rglob(f"data/{fid}"))
    part.unlink()
    _cancelled_within_a_second(folder_engine.repair,
                               _CancelOn(lambda e: isinstance(e, StoreProgress)))
    assert not part.exists() and not list(store.rglob(".tmp-*"))   # nothing half-written
    _, ((_, result),) = folder_engine.repair()
    assert not isinstance(result, CssmError) and result.after.healthy    # and it can still run


def test_cancel_stops_a_catalog_rebuild_and_keeps_the_old_list(folder_engine: Engine,
                                                               tmp_path: Path) -> None:
    from cssm_desktop.core.progress import Step

    for i in range(3):
        (tmp_path / f"{i}.txt").write_bytes(b"x" * i)
    folder_engine.put([tmp_path / f"{i}.txt" for i in range(3)])
    before = folder_engine.entries()
    _cancelled_within_a_second(folder_engine.rebuild_catalog,
                               _CancelOn(lambda e: isinstance(e, Step) and e.done == 1))
    assert folder_engine.entries() == before


def test_cancel_stops_gc_between_two_deletions(folder_engine: Engine, tmp_path: Path) -> None:
    from cssm_desktop.core.progress import Step

    for i in range(2):   # two uploads that crashed after their data parts
        (tmp_path / f"{i}.bin").write_bytes(os.urandom(1000))
        (res,) = folder_engine.put([tmp_path / f"{i}.bin"])
        assert res.stored is not None
        for sc in folder_engine.config.stores:
            next(Path(sc.path or "").rglob(f"meta/{res.stored.id_hex}")).unlink()
    listener = _CancelOn(lambda e: isinstance(e, Step) and e.done == 3)
    _cancelled_within_a_second(
        lambda **kw: folder_engine.gc(grace_seconds=0, **kw), listener)
    left = folder_engine.gc(grace_seconds=0, dry_run=True).found
    assert len(left) == 10 - 3   # three removed, the rest for the next run


# ---------------------------------------------------------------- typed states


def test_verify_says_down_empty_missing_and_damaged_by_type(folder_engine: Engine,
                                                            tmp_path: Path) -> None:
    """An unplugged store used to show as DAMAGED: the distinction was lost in a string."""
    import shutil

    from cssm_desktop.core.status import PieceState, StoreState

    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(10_000))
    (res,) = folder_engine.put([src])
    assert res.stored is not None
    fid = res.stored.id_hex
    roots = [Path(s.path or "") for s in folder_engine.config.stores]
    shutil.move(roots[1], tmp_path / "unplugged")                 # store2: gone
    next(roots[2].rglob(f"meta/{fid}")).unlink()                  # store3: one object gone
    part = next(roots[3].rglob(f"data/{fid}"))                    # store4: a rotten part
    raw = bytearray(part.read_bytes())
    raw[-1] ^= 1     # flipped: setting it to "!" changed nothing when it was one (1 in 256)
    part.write_bytes(bytes(raw))

    def report_of() -> list[tuple[PieceState, PieceState]]:
        engine = Engine(folder_engine.config, catalog_path=folder_engine.catalog.path)
        engine.unlock(PASSWORD)
        ((_, report),) = engine.verify()
        assert not isinstance(report, CssmError) and report.restorable
        return [(c.meta_state, c.data_state) for c in report.checks]

    assert report_of() == [
        (PieceState.OK, PieceState.OK),
        (PieceState.UNREACHABLE, PieceState.UNREACHABLE),
        (PieceState.MISSING, PieceState.OK),
        (PieceState.OK, PieceState.DAMAGED),
        (PieceState.OK, PieceState.OK)]
    roots[1].mkdir()                                              # store2: an empty disk now
    engine = Engine(folder_engine.config, catalog_path=folder_engine.catalog.path)
    assert engine.vault().status["store2"].state is StoreState.EMPTY
    assert report_of()[1] == (PieceState.EMPTY, PieceState.EMPTY)


def test_no_code_decides_on_message_text() -> None:
    """The check anyone can run, kept: meaning travels as types and fields (StoreState,
    PieceState, exception classes, StoreError.code), never read back out of a message."""
    import re

    patterns = [r"\bin\s+(exc|err|error|e|res)\.reason\b", r"\bin\s+str\((exc|err|error|e)\)",
                r"(==|!=)\s*[\"']cancelled[\"']", r"\.reason\.(startswith|endswith)\(",
                r"\.reason\s*(==|!=)", r"str\((exc|err|error|e)\)\s*(==|!=|\.startswith)",
                r"\b(text|message|err|error)\s*(==|!=)\s*[\"']"]
    root = Path(__file__).resolve().parent.parent / "cssm_desktop"
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}"
             for path in sorted(root.rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if any(re.search(p, line) for p in patterns)]
    assert found == []


@pytest.mark.parametrize("stop", ["cancel", "a stage fails"])
def test_a_stage_waiting_on_a_channel_is_woken(stop: str) -> None:
    """Stages sleep on their channels (no polling); a cancel or another stage's failure
    must still wake them, or join() would hang."""
    import threading
    import time

    from cssm_desktop.core.progress import CancelToken
    from cssm_desktop.core.streams import Pipeline
    from cssm_desktop.errors import Cancelled

    token = CancelToken()
    pipe = Pipeline(token)
    empty, full = pipe.channel(1), pipe.channel(1)
    full.put("x")
    waiting = threading.Barrier(3)

    def reader() -> None:
        waiting.wait()
        empty.get()          # nothing ever comes

    def writer() -> None:
        waiting.wait()
        full.put("y")        # never room

    pipe.spawn(reader)
    pipe.spawn(writer)
    waiting.wait()
    started = time.monotonic()
    if stop == "cancel":
        token.cancel()
        expected: type[BaseException] = Cancelled
    else:
        def broken() -> None:
            raise OSError("disk gone")
        pipe.spawn(broken)
        expected = OSError
    with pytest.raises(expected):
        pipe.join()
    assert time.monotonic() - started < 1.0


def test_store_calls_share_one_pool_and_nest_without_waiting_forever() -> None:
    """parallel.each reuses one pool (a pool per call cost ~1.2 ms, several times per
    stored file); a call made from inside a pool worker runs inline instead of queueing
    behind itself."""
    import threading

    from cssm_desktop.core import parallel

    names: set[str] = set()

    def inner(x: int) -> list[int | BaseException]:
        names.add(threading.current_thread().name)
        return parallel.each(lambda y: x * y, range(4))

    assert parallel.each(inner, range(3)) == [[0, 0, 0, 0], [0, 1, 2, 3], [0, 2, 4, 6]]
    assert all(name.startswith("cssm-store") for name in names)
    failures = parallel.each(lambda x: 1 // x, [1, 0])
    assert failures[0] == 1 and isinstance(failures[1], ZeroDivisionError)


def test_a_vault_of_folders_never_loads_boto3() -> None:
    """boto3 and botocore cost ~15 MiB of memory and a fifth of a second to import: the
    CLI and engine load them only for S3 stores (put.py once pulled them in through a
    constant of stores/s3.py: peak RSS of a 1 GiB put into folders went from 96 to 111)."""
    import subprocess
    import sys

    code = ("import sys, cssm_desktop.cli, cssm_desktop.engine, cssm_desktop.core.put, "
            "cssm_desktop.core.journal; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('boto3', 'botocore', 'PySide6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
