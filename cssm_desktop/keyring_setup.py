"""Pick the OS keyring explicitly in a frozen (PyInstaller) app.

keyring finds its backends through package entry points, which a frozen app does not
have: it would silently fall back to no keyring at all. So the bundle names the
platform's backend itself, and when none works the app says so (never a plaintext file).
"""

from __future__ import annotations

import importlib
import logging
import sys

log = logging.getLogger(__name__)

BACKENDS = {
    "win32": ["keyring.backends.Windows.WinVaultKeyring"],
    "darwin": ["keyring.backends.macOS.Keyring"],
    "linux": ["keyring.backends.SecretService.Keyring", "keyring.backends.kwallet.DBusKeyring"],
}


def choose_backend(force: bool = False) -> str:
    """In a frozen app (or with force), select the first working platform backend.

    Otherwise do nothing: importing keyring and discovering its backends costs ~0.1 s,
    which every `cssm` command would pay even when no secret is needed.
    """
    if not (getattr(sys, "frozen", False) or force):
        return "default"  # keyring discovers backends itself, lazily, on first use
    import keyring
    from keyring.backends import fail

    platform = "linux" if sys.platform.startswith("linux") else sys.platform
    for path in BACKENDS.get(platform, []):
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
            if cls.priority <= 0:  # raises or is low when the service is not there
                continue
            keyring.set_keyring(cls())
            return name
        except Exception as exc:  # any failure means: not this one
            log.info("keyring backend %s not usable: %s", path, exc)
    keyring.set_keyring(fail.Keyring())
    return "none"


def keyring_usable() -> bool:
    import keyring
    from keyring.backends import chainer, fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)
