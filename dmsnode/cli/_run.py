"""``dmsnode run``: start the node daemon."""

from __future__ import annotations

import functools
import json
import sys

import click
import trio

from ..daemon import open_trust, run_daemon
from ..observability import configure_logging
from ._app import App, pass_app
from ._prompt import passphrase


@click.command()
@click.option(
    "--context",
    default="dms",
    show_default=True,
    help="The node's key and capability context (both of this name).",
)
@pass_app
def run(app: App, context: str) -> None:
    """Run the node: network, actor system and REST API, until SIGINT or SIGTERM.

    The node's key (DMS_PASSPHRASE or a prompt) and capability context are loaded from the user
    directory; listen addresses, bootstrap peers and the API address come from the config.
    Logs go to stderr as JSON lines (observability.*); once ready, one JSON line {"ready": {did, p2p, api}} goes to stdout.

    \b
    Examples:
      dmsnode key new dms && dmsnode run
      BOOTSTRAP_PEERS=/ip4/10.0.0.2/tcp/9000 dmsnode run
      dmsnode --config ./node1.json run
    """
    config = app.config
    observability = config.get("observability")
    configure_logging(
        observability["log_level"],
        fmt=observability["log_format"],
        file=observability["log_file"] or None,
    )
    identity = app.keystore.load(context, passphrase(confirm=False, what=f"key '{context}'"))
    trust = open_trust(app.user_dir, identity, context)
    trio.run(functools.partial(run_daemon, config, identity, trust, on_ready=_announce))


def _announce(info: dict[str, object]) -> None:
    """One JSON line on stdout when the node is ready, for scripts: did, p2p, api."""
    click.echo(json.dumps({"ready": info}), nl=True)
    sys.stdout.flush()
