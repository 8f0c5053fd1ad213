"""``dmsnode demo``: the quickest way to see the system work."""

from __future__ import annotations

import click
import trio

from ..demo import run_demo


@click.command()
def demo() -> None:
    """Start three real nodes on loopback and deploy onto them.

    Fresh keys in a temporary directory, trust set up as an organisation would, three
    'dmsnode run' processes (one orchestrator, two providers that onboard a small share), the
    hello ensemble and a two-node service pair deployed (process executor; Docker for hello
    when available), their logs shown, shut down, every ledger checked empty, and a refused
    call. Everything is stopped and removed at the end; nothing is written elsewhere.

    \b
    Examples:
      dmsnode demo
    """
    trio.run(run_demo, click.echo)
