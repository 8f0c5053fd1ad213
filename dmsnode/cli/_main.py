"""The ``dmsnode`` root command: global options and the translation of errors to exit codes.

Exit codes: 0 success; 1 a refused or failed operation (one line on stderr, no traceback);
2 bad usage (click's own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nuactor.errors import NuactorError

from ..errors import DmsError
from ._actor import actor
from ._app import App
from ._cap import cap
from ._config import config
from ._demo import demo
from ._deploy import deploy, deployments
from ._key import key
from ._peers import peers
from ._resources import offboard, onboard, resources
from ._run import run
from ._validate import validate


class _Cli(click.Group):
    """A group that turns the errors the program raises on purpose into one line and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (NuactorError, DmsError) as exc:
            raise click.ClickException(str(exc)) from None
        except ValueError as exc:
            # Values refused by the library's own checks (a bad key name, say).
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="DMS_CONFIG",
    help="Configuration file (default: first dms_config.json in ., ~/.nunet, /etc/nunet).",
)
@click.option(
    "--user-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where keys and capability contexts live (default: config general.user_dir).",
)
@click.version_option(package_name="nuactor-dmsnode", prog_name="dmsnode")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, user_dir: Path | None) -> None:
    """dmsnode: a NuNet Device Management Service node.

    \b
    Examples:
      dmsnode demo                 # see two nodes exchange a signed message
      dmsnode key new dms          # create the node's key
      dmsnode --user-dir /tmp/n1 key list
    """
    ctx.obj = App(config_path=config_path, user_dir_override=user_dir)


cli.add_command(key)
cli.add_command(cap)
cli.add_command(config)
cli.add_command(demo)
cli.add_command(actor)
cli.add_command(peers)
cli.add_command(run)
cli.add_command(onboard)
cli.add_command(offboard)
cli.add_command(resources)
cli.add_command(validate)
cli.add_command(deploy)
cli.add_command(deployments)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="dmsnode")
