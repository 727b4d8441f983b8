#!/usr/bin/env python3
"""Make the English plural forms the window's "%n file(s)" texts show as "1 file" and
"2 files": Qt's own way (QTranslator, numerus forms) instead of hand-made plurals.

    python build_scripts/english_plurals.py [--check]

runs pyside6-lupdate over the GUI (plural texts only), fills each text's singular and
plural from the rules below, and compiles cssm_desktop/gui/assets/cssm_en.qm with
pyside6-lrelease. A text these rules do not cover stops the script: say how it reads.
--check only says whether the committed file is current (the tests run it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUI = ROOT / "cssm_desktop" / "gui"
QM = GUI / "assets" / "cssm_en.qm"

# Words that change with the count, as (plural text, singular text), applied in order.
SINGULAR = [("(s)", ""), (" are not finished", " is not finished"),
            (" are already stored", " is already stored"), (" already exist ", " already exists "),
            ("resume them", "resume it"), ("uploaded for them", "uploaded for it"),
            ("Stop them", "Stop it"), ("Cancel them", "Cancel it"),
            ("add them again", "add it again"), ("Replace them", "Replace it"),
            ("the stored copies", "the stored copy"),
            ("keeps them as they are", "keeps it as it is"), ("(kept as they were)",
                                                               "(kept as it was)"),
            ("their stores are reachable", "its stores are reachable"),
            ("add the others again", "add it again")]


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        sys.exit(f"{name} not found (it comes with PySide6)")
    return found


def forms(source: str) -> tuple[str, str]:
    one = source
    for plural, singular in SINGULAR:
        one = one.replace(plural, singular)
    many = source.replace("(s)", "s")
    if "(s)" not in source and not re.search(r"%n (s left|more|restored|skipped|failed|left alone)",
                                               source):
        sys.exit(f"no rule for: {source!r}")
    return one, many


def main() -> None:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        ts = Path(tmp) / "cssm_en.ts"
        subprocess.run([tool("pyside6-lupdate"), *map(str, sorted(GUI.glob("*.py"))),
                        "-pluralonly", "-source-language", "en", "-target-language", "en",
                        "-locations", "none", "-ts", str(ts)], check=True,
                       stdout=subprocess.DEVNULL)
        tree = ET.parse(ts)
        for message in tree.iter("message"):
            if message.get("numerus") != "yes":
                continue
            source = message.findtext("source") or ""
            translation = message.find("translation")
            assert translation is not None
            translation.attrib.pop("type", None)
            for node, text in zip(translation.findall("numerusform"), forms(source),
                                  strict=True):
                node.text = text
        tree.write(ts, encoding="utf-8", xml_declaration=True)
        out = Path(tmp) / QM.name if check else QM
        subprocess.run([tool("pyside6-lrelease"), str(ts), "-qm", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        if check:
            if not QM.exists() or QM.read_bytes() != out.read_bytes():
                sys.exit(f"{QM.relative_to(ROOT)} is out of date: run "
                         "python build_scripts/english_plurals.py")
            print(f"{QM.relative_to(ROOT)} is current")
            return
    print(f"wrote {QM.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
