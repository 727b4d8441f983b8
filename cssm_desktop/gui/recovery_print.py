"""The recovery kit as one printable page (Qt's PDF writer, which the app ships): what
it is, the vault and its stores with their fingerprints, a QR code of the kit's JSON, the
text block, a blank for the password written by hand, and what to do on a new computer."""

from __future__ import annotations

import html
import io
import os
from pathlib import Path

from PySide6.QtCore import QMarginsF, QRectF, QSizeF, Qt
from PySide6.QtGui import (
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
)

from ..recovery.kit import Kit, text_block


def ensure_app() -> None:
    """`cssm kit export` has no window: an offscreen application for the painter (a
    QApplication, not a QGuiApplication: in a process that later shows a widget, one of
    the latter made first would abort it)."""
    if QGuiApplication.instance() is None:
        from PySide6.QtWidgets import QApplication

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        ensure_app.app = QApplication(["cssm"])  # type: ignore[attr-defined]


def qr_image(kit: Kit) -> QImage:
    import segno

    code = segno.make(kit.compact(), error="m", micro=False)
    buf = io.BytesIO()
    code.save(buf, kind="png", scale=4, border=4)
    image = QImage()
    image.loadFromData(buf.getvalue(), "PNG")
    return image


def page_html(kit: Kit) -> str:
    rows = "".join(
        f"<tr><td>{s.index + 1}</td><td>{html.escape(s.name)}</td>"
        f"<td>{html.escape(s.where())}</td><td><tt>{s.fingerprint}</tt></td></tr>"
        for s in kit.stores)
    creds = ("<p><b>This kit holds the stores' credentials, sealed under the vault "
             "password.</b> With the password it opens them: keep it as safe as the "
             "password itself.</p>") if kit.credentials else (
             "<p>It holds no credentials: on a new computer you also need each S3 store's "
             "secret key.</p>")
    block = html.escape(text_block(kit)).replace("\n", "<br>")
    return f"""
<h2>CSSM Desktop recovery kit</h2>
<p>Vault <tt>{kit.vault_id}</tt> &middot; any <b>{kit.k}</b> of its <b>{kit.n}</b> stores
restore every file &middot; kit made {html.escape(kit.made)} (UTC) &middot; password key:
Argon2id, {kit.kdf['m'] // 1024} MiB, {kit.kdf['t']} passes, {kit.kdf['p']} lanes.</p>
<p>This sheet and your password bring your files back on a new computer. Without the
password it reads nothing. Keep it where you keep important papers, away from the
computer.</p>
{creds}
<table border="1" cellpadding="3" cellspacing="0" width="100%">
<tr><th>#</th><th>Store</th><th>Where</th><th>Fingerprint</th></tr>{rows}</table>
<p><b>Password</b> (write it by hand, or keep it elsewhere):
________________________________________</p>
<h3>On a new computer</h3>
<ol><li>Install CSSM Desktop.</li>
<li>On the first page choose <i>Connect with a recovery kit…</i> and open the kit's file,
or paste the text block below; in a terminal: <tt>cssm connect --kit FILE</tt>.</li>
<li>Type the password. Each store is checked against its fingerprint: a store that does
not match is named and left out, never believed.</li>
<li>The file list is rebuilt from the stores; restore what you need.</li></ol>
<p><b>Text block</b> (the same data as the QR code):<br><tt>{block}</tt></p>
"""


def write_pdf(kit: Kit, path: Path) -> None:
    ensure_app()
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(300)
    writer.setTitle("CSSM Desktop recovery kit")
    painter = QPainter(writer)
    try:
        area = writer.pageLayout().paintRectPixels(writer.resolution())
        width = area.width()
        qr = qr_image(kit)
        side = min(width * 0.38, area.height() * 0.32)
        doc = QTextDocument()
        doc.setDefaultStyleSheet("body { font-size: 9pt; } h2 { font-size: 16pt; }")
        doc.setHtml(page_html(kit))
        doc.setPageSize(QSizeF(width - side - 40, 10_000))
        # The QR code at the top right, the text beside and below it.
        painter.drawImage(QRectF(width - side, 0, side, side), qr)
        painter.save()
        scale = writer.resolution() / 96
        painter.scale(scale, scale)
        doc.setTextWidth((width - side - 40) / scale)
        doc.drawContents(painter, QRectF(0, 0, (width - side - 40) / scale,
                                         area.height() / scale))
        painter.restore()
        painter.setPen(Qt.GlobalColor.darkGray)
    finally:
        painter.end()
