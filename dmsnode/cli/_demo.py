"""``dmsnode demo``: the quickest way to see the system work."""

from __future__ import annotations

import click
import trio

from ..demo import run_demo


@click.command()
def demo() -> None:
    """Start three real nodes on loopback and show them work together.

    Fresh keys in a temporary directory, trust set up with the 'cap' commands, three
    'dmsnode run' processes, a peer list, a hello broadcast and a refused call. Everything is
    stopped and removed at the end; nothing is written elsewhere.

    \b
    Examples:
      dmsnode demo
    """
    trio.run(run_demo, click.echo)
