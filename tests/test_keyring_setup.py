"""The frozen-app keyring choice, exercised here with force=True."""

from __future__ import annotations

import keyring
from keyring.backends import fail

from cssm_desktop.keyring_setup import choose_backend, keyring_usable


def test_unfrozen_runs_leave_keyring_alone(memory_keyring: object) -> None:
    assert choose_backend() == "default"
    assert keyring.get_keyring() is memory_keyring
    assert keyring_usable()


def test_forced_choice_falls_back_to_no_keyring_and_says_so() -> None:
    # No D-Bus session here, so no platform backend works: the app must say so.
    name = choose_backend(force=True)
    if name == "none":
        assert isinstance(keyring.get_keyring(), fail.Keyring)
        assert not keyring_usable()
    else:  # a machine with a real Secret Service
        assert keyring_usable()
