"""Help > How CSSM Desktop works (F1): the answers a first hour needs, inside the app.

Inside, not a link: the app runs where no browser is, and a bundle has no docs folder.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget


def guide_html() -> str:
    tr = QCoreApplication.translate
    return tr("Help", """
<h2>How CSSM Desktop works</h2>
<p>Each file you add is encrypted on this computer, cut into <i>n</i> parts and sent to
your <i>n</i> stores (S3 buckets or folders), one part each. Any <i>k</i> of them bring
the file back; fewer reveal nothing of it, even to someone who knows your password.</p>
<h3>Getting started</h3>
<ol>
<li><b>Stores</b>: <i>Vault &gt; Settings…</i> (Ctrl+,). <i>Add S3 provider…</i> takes the
endpoint and keys once and then the bucket names; <i>Add folder…</i> adds a disk or a
synced folder. Use stores that do not fail together.</li>
<li><b>Vault</b>: when the stores hold none yet, the window offers <i>Create the vault
here…</i>: choose how many stores a file needs (<i>k</i>) and a password. Keep the
password safe: nobody can recover it.</li>
<li><b>Files</b>: drop files or folders anywhere on the window, or press Ctrl+O. They go
up in <i>Activity</i> (Alt+3).</li>
<li><b>Restore</b>: select files or folders in <i>Files</i> (Alt+1) and press Enter or
Ctrl+R. <i>History…</i> (Ctrl+Shift+H) lists every version of a file.</li>
<li><b>Backups</b> (Alt+2): <i>Protect a folder…</i> and it is backed up by itself,
every hour and soon after it changes, while the app runs; each backup is a snapshot, and
<i>Restore as of this…</i> brings the folder back as it was then.</li>
</ol>
<h3>When a store is away</h3>
<p>Files stay restorable while <i>k</i> stores answer; the banner says which are away and
what that means. <i>Repair</i> rebuilds the missing parts once they are back, or on a
store that replaces one (<i>Settings &gt; Replace…</i>).</p>
<h3>A new computer</h3>
<p>Save a <i>Vault &gt; Recovery kit…</i> now, and keep it away from this computer. On a
new one, <i>Connect with a recovery kit…</i> and your password set everything up. Without
a kit: add the same stores, then <i>Connect to an existing vault</i>.</p>
<h3>Other programs</h3>
<p><i>Vault &gt; Serve the local API</i> lets programs on this computer store and restore
files (see the README); they need the token in the data folder. What they do shows in
<i>Activity</i> under <i>From other programs</i>, where Delete cancels it.</p>
<h3>More</h3>
<p><i>View &gt; Log</i> says where the log file is (it never holds names or passwords).
The same engine works from a terminal: <code>cssm --help</code>.</p>
""")


class HelpDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("How CSSM Desktop works"))
        self.resize(620, 560)
        text = QTextBrowser()
        text.setOpenExternalLinks(True)
        text.setHtml(guide_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)
        text.setFocus()
