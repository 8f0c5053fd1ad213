"""What every command shares: the configuration, the user directory and the keystore."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import click

from nuactor import Keystore

from ..config import Config


@dataclass
class App:
    """Lazily loaded state for one CLI invocation (a bad config does not break ``--help``)."""

    config_path: Path | None = None
    user_dir_override: Path | None = None

    @functools.cached_property
    def config(self) -> Config:
        return Config.load(self.config_path)

    @property
    def user_dir(self) -> Path:
        if self.user_dir_override is not None:
            return self.user_dir_override
        return self.config.user_dir

    @property
    def keystore(self) -> Keystore:
        return Keystore(self.user_dir / "key")


pass_app = click.make_pass_decorator(App, ensure=True)
