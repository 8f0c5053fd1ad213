"""``dmsnode demo``: the quickest way to see the system work."""

from __future__ import annotations

import click
import trio

from ..demo import run_demo


@click.command()
def demo() -> None:
    """Start two local nodes and show one signed message going from one to the other.

    Nothing is written to disk and nothing is left running.
    """
    trio.run(run_demo, click.echo)
