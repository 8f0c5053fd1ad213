"""Passphrases: from ``DMS_PASSPHRASE`` or, failing that, a prompt."""

from __future__ import annotations

import os

import click

from ..errors import DmsError

PASSPHRASE_ENV = "DMS_PASSPHRASE"


def passphrase(*, confirm: bool, what: str = "key") -> str:
    """The passphrase for a key; on creation (``confirm``) a prompt asks for it twice."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        if not value:
            raise DmsError(f"{PASSPHRASE_ENV} is set but empty; a key needs a passphrase")
        return value
    try:
        entered: str = click.prompt(
            f"Passphrase for the {what}",
            hide_input=True,
            confirmation_prompt="Repeat the passphrase" if confirm else False,
        )
    except click.Abort:
        raise DmsError(
            f"no passphrase: set {PASSPHRASE_ENV} or run the command in a terminal"
        ) from None
    if not entered:
        raise DmsError("an empty passphrase is not allowed")
    return entered
