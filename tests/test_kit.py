"""The recovery kit (issue 26): exported as JSON, text and a PDF whose QR code decodes to
the same JSON; on a fresh home `cssm connect --kit` and the password list and restore
everything; another vault's kit, a wrong password, a store that does not match its
fingerprint and an altered kit are each refused or flagged in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cssm_desktop.config import Config, StoreConfig, load_config, set_secret
from cssm_desktop.core.keys import KdfParams
from cssm_desktop.errors import FormatError, WrongPassword
from cssm_desktop.recovery.kit import (
    fingerprint,
    make_kit,
    open_credentials,
    parse_kit,
    text_block,
)

from .conftest import FAST_KDF, PASSWORD
from .test_cli import Cli, cli  # noqa: F401  (the fixture)


def _new_home(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:  # noqa: F811
    """Another computer: its own data folder, and no settings yet."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / name / "data"))
    cli.config = tmp_path / name / "cssm.toml"
    return cli.config


def test_a_kit_and_the_password_bring_everything_back_on_a_new_computer(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import pypdfium2 as pdfium
    import zxingcpp

    docs = tmp_path / "Docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha")
    (docs / "big.bin").write_bytes(os.urandom(2 << 20))
    assert cli("put", str(docs))[0] == 0
    assert cli("backup", str(docs))[0] == 0
    kit_json, kit_pdf = tmp_path / "kit.json", tmp_path / "kit.pdf"
    code, out, err = cli("kit", "export", "--json", str(kit_json), "-o", str(kit_pdf),
                         "--text")
    assert code == 0, err
    kit = json.loads(kit_json.read_text())
    assert kit["format"] == "cssm-recovery-kit" and kit["n"] == 5 and kit["k"] == 3
    assert [s["index"] for s in kit["stores"]] == [0, 1, 2, 3, 4]
    assert "credentials" not in kit and PASSWORD not in kit_json.read_text()
    assert out.startswith("CSSM-KIT-1 ") and parse_kit(out).as_json() == kit
    # The PDF renders, and its QR code decodes to the very same JSON.
    page = pdfium.PdfDocument(str(kit_pdf))[0].render(scale=2).to_pil()
    (code_read,) = zxingcpp.read_barcodes(page)
    assert json.loads(code_read.text) == kit
    assert cli("kit", "test", str(kit_json))[0] == 0
    # A new computer: nothing but the kit and the password.
    target = _new_home(cli, tmp_path, monkeypatch, "new-computer")
    code, out, err = cli("connect", "--kit", str(kit_json))
    assert code == 0, err
    assert "5 of 5 stores match" in out and "2 files and 1 snapshot listed" in out
    cfg = load_config(target)
    assert cfg.vault == kit["vault_id"] and [s.index for s in cfg.stores] == [0, 1, 2, 3, 4]
    listed = json.loads(cli("ls", "--json")[1])
    assert sorted(e["name"] for e in listed) == ["Docs/a.txt", "Docs/big.bin"]
    code, _, err = cli("get", "Docs", "-o", str(tmp_path / "back"))
    assert code == 0, err
    assert (tmp_path / "back" / "Docs" / "big.bin").read_bytes() == \
        (docs / "big.bin").read_bytes()


def test_wrong_kits_wrong_passwords_and_impostor_stores_are_refused_or_flagged(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    (tmp_path / "f.txt").write_text("x")
    assert cli("put", str(tmp_path / "f.txt"))[0] == 0
    kit_json = tmp_path / "kit.json"
    assert cli("kit", "export", "--json", str(kit_json))[0] == 0
    kit = json.loads(kit_json.read_text())
    _new_home(cli, tmp_path, monkeypatch, "other")
    monkeypatch.setenv("CSSM_PASSWORD", "not the password")
    code, _, err = cli("connect", "--kit", str(kit_json))
    assert code == 1 and "wrong password" in err.lower() and len(err.splitlines()) == 1
    assert not cli.config.exists()   # nothing written
    monkeypatch.setenv("CSSM_PASSWORD", PASSWORD)
    # Two stores swapped in the kit (each keeps its fingerprint): each store's header
    # says another place than the kit gives it; both are named and left out.
    swapped = json.loads(json.dumps(kit))
    a, b = swapped["stores"][0], swapped["stores"][1]
    a["path"], b["path"] = b["path"], a["path"]
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    code, out, err = cli("connect", "--kit", str(tmp_path / "swapped.json"))
    assert code == 0, err
    assert "3 of 5 stores match" in out
    assert "store1 left out" in err and "store2 left out" in err
    # A kit another vault's stores do not hold: the stores hold no header of it.
    other = json.loads(json.dumps(kit))
    other["vault_id"] = "ab" * 16
    for s in other["stores"]:
        s["fingerprint"] = fingerprint(bytes.fromhex(other["vault_id"]), s["index"], 5, 3)
    (tmp_path / "other.json").write_text(json.dumps(other))
    _new_home(cli, tmp_path, monkeypatch, "third")
    code, _, err = cli("connect", "--kit", str(tmp_path / "other.json"))
    assert code == 1 and len(err.splitlines()) == 1, err
    # Altered kits: a fingerprint that does not fit, a typo in the text block.
    bad = json.loads(json.dumps(kit))
    bad["stores"][2]["fingerprint"] = "0" * 16
    with pytest.raises(FormatError, match="fingerprint"):
        parse_kit(json.dumps(bad))
    block = text_block(parse_kit(json.dumps(kit))).splitlines()
    block[2] = ("A" if block[2][0] != "A" else "B") + block[2][1:]
    with pytest.raises(FormatError, match="typo"):
        parse_kit("\n".join(block))
    code, _, err = cli("kit", "test", str(tmp_path / "f.txt"))
    assert code == 1 and "not a recovery kit" in err


def test_credentials_are_absent_by_default_and_only_sealed_when_asked(tmp_path: Path) -> None:
    vault_id = bytes(range(16))
    stores = [StoreConfig(f"s{i}", "s3", bucket=f"bucket-{i}", endpoint_url="https://s3.test",
                          access_key_id=f"AKIA{i}", index=i) for i in range(3)]
    cfg = Config(stores=stores, threshold=2, vault=vault_id.hex(), vault_n=3, vault_k=2)
    for i in range(3):
        set_secret(f"s{i}", f"very-secret-{i}")
    plain = make_kit(cfg, vault_id, 3, 2, FAST_KDF)
    assert plain.credentials is None and "very-secret" not in plain.compact()
    sealed = make_kit(cfg, vault_id, 3, 2, FAST_KDF, PASSWORD, with_credentials=True)
    assert sealed.credentials is not None and "very-secret" not in sealed.compact()
    again = parse_kit(sealed.compact())
    assert open_credentials(again, PASSWORD) == {f"s{i}": f"very-secret-{i}" for i in range(3)}
    with pytest.raises(WrongPassword):
        open_credentials(again, "guess")
    assert isinstance(FAST_KDF, KdfParams)
