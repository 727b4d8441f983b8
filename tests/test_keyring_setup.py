"""The frozen-app keyring choice, exercised here with force=True."""

from __future__ import annotations

import keyring
import pytest
from keyring.backends import fail

from cssm_desktop.keyring_setup import choose_backend, keyring_usable


def test_unfrozen_runs_leave_keyring_alone(memory_keyring: object) -> None:
    assert choose_backend() == "default"
    assert keyring.get_keyring() is memory_keyring
    assert keyring_usable()


def test_forced_choice_falls_back_to_no_keyring_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # No D-Bus session bus to reach, so no platform backend works: the app must say so
    # (and must not fall back to anything that would write secrets to a file).
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/cssm-test-bus")
    assert choose_backend(force=True) == "none"
    assert isinstance(keyring.get_keyring(), fail.Keyring)
    assert not keyring_usable()
