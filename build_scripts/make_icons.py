#!/usr/bin/env python3
"""Render resources/cssm-desktop.svg into the PNG, .ico and .icns files the app and the
bundles use. Run after changing the SVG; the outputs are committed.

Qt's SVG renderer draws the sizes; Pillow packs them into .ico (Windows) and .icns (macOS).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "cssm-desktop.svg"
OUT = ROOT / "resources" / "icons"
APP_ICON = ROOT / "cssm_desktop" / "gui" / "assets" / "cssm-desktop.png"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)


def render(size: int) -> object:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(SOURCE)).render(painter)
    painter.end()
    return image


def main() -> int:
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication(sys.argv[:1])
    OUT.mkdir(parents=True, exist_ok=True)
    APP_ICON.parent.mkdir(parents=True, exist_ok=True)
    pngs = {}
    for size in SIZES:
        path = OUT / f"cssm-desktop-{size}.png"
        render(size).save(str(path))  # type: ignore[attr-defined]
        pngs[size] = path
    render(256).save(str(APP_ICON))  # type: ignore[attr-defined]
    big = Image.open(pngs[1024])
    big.save(OUT / "cssm-desktop.ico", sizes=[(s, s) for s in (16, 24, 32, 48, 64, 128, 256)])
    big.save(OUT / "cssm-desktop.icns")
    print(f"icons written to {OUT.relative_to(ROOT)} and {APP_ICON.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
