"""Property-based fuzzing: whatever bytes a store or a config file holds, only the
project's own clear errors come out, never a crash, a hang or wrong plaintext."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cssm_desktop.config import Config, parse_config
from cssm_desktop.engine import Engine
from cssm_desktop.errors import ConfigError, CssmError

from .conftest import FAST_KDF, PASSWORD, folder_stores


@pytest.fixture(autouse=True)
def _each_file_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests look at one file's own objects in the stores: every file is stored
    alone here (small files in packs are tested in test_packs.py)."""
    monkeypatch.setattr("cssm_desktop.engine.SMALL_FILE", 0)


FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.text(max_size=300))
def test_config_text_never_crashes(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text.encode("utf-8"))


toml_scalar = st.one_of(st.text(max_size=20), st.integers(-5, 40), st.booleans(),
                        st.floats(allow_nan=False))
store_table = st.dictionaries(
    st.sampled_from(["name", "type", "path", "bucket", "endpoint_url", "region", "prefix",
                     "access_key_id", "profile", "secret", "kind"]),
    st.one_of(toml_scalar, st.sampled_from(["folder", "s3", "my-bucket", "/tmp/x", "a"])),
    max_size=6)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


@FUZZ
@given(st.one_of(st.none(), toml_scalar), st.lists(store_table, max_size=5))
def test_config_structures_never_crash(threshold: object, stores: list[dict[str, object]]
                                       ) -> None:
    lines = [] if threshold is None else [f"threshold = {_toml_value(threshold)}"]
    for table in stores:
        lines.append("[[store]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    try:
        cfg = parse_config("\n".join(lines).encode())
    except ConfigError:
        return
    assert 2 <= len(cfg.stores) <= 16 and 1 <= cfg.threshold <= len(cfg.stores)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Engine, str, bytes]:
    engine = Engine(Config(stores=folder_stores(tmp_path / "stores"), threshold=3),
                    catalog_path=tmp_path / "c.sqlite")
    engine.init(PASSWORD, kdf=FAST_KDF)
    data = os.urandom(3 * 3 * 4096 + 99)
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    (res,) = engine.put([src], block_size=4096)
    assert res.stored is not None
    return engine, res.stored.id_hex, data


mutation = st.tuples(st.sampled_from(["flip", "truncate", "append", "replace"]),
                     st.integers(0, 10_000), st.binary(min_size=1, max_size=64))


@FUZZ
@given(targets=st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["meta", "data", "vault"]),
                                  mutation), min_size=1, max_size=4))
def test_tampered_stores_give_right_bytes_or_a_clear_error(
        stored: tuple[Engine, str, bytes], tmp_path: Path,
        targets: list[tuple[int, str, tuple[str, int, bytes]]]) -> None:
    engine, fid, data = stored
    vid = engine.vault().id_hex
    saved: dict[Path, bytes] = {}
    for index, kind, (how, pos, junk) in targets:
        store = Path(engine.config.stores[index].path or "") / vid
        path = store / "vault" if kind == "vault" else store / kind / fid
        raw = saved.setdefault(path, path.read_bytes())
        raw = path.read_bytes()
        at = pos % max(1, len(raw))
        if how == "flip":
            raw = raw[:at] + bytes([raw[at] ^ (junk[0] or 1)]) + raw[at + 1:] if raw else junk
        elif how == "truncate":
            raw = raw[:at]
        elif how == "append":
            raw = raw + junk
        else:
            raw = junk
        path.write_bytes(raw)
    out = tmp_path / "out.bin"
    # Up to n-k = 2 stores damaged in any way: the restore must succeed. More: it may
    # fail, but only with one of our errors, and never with wrong bytes.
    must_restore = len({index for index, _, _ in targets}) <= 2
    try:
        fresh = Engine(engine.config, catalog_path=engine.catalog.path)
        fresh.unlock(PASSWORD)
        fresh.get(fresh.resolve(fid), out, force=True)
        assert out.read_bytes() == data  # whatever was damaged, never wrong bytes
    except CssmError as exc:
        assert not must_restore, f"{len(set(targets))} stores damaged, yet: {exc}"
        assert not out.exists() or out.read_bytes() == data
    finally:
        for path, raw in saved.items():
            path.write_bytes(raw)
        out.unlink(missing_ok=True)
