"""``dmsnode peers``: the node's view of the network."""

from __future__ import annotations

import datetime

import click

from ._app import App, pass_app
from ._gateway import call_node, gateway_options
from ._output import json_option, print_json, print_table


def _ago(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    seconds = max(0.0, datetime.datetime.now(datetime.UTC).timestamp() - timestamp)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


@click.group()
def peers() -> None:
    """List, ping and connect the node's peers.

    \b
    Examples:
      dmsnode peers list
      dmsnode peers self
      dmsnode peers ping did:key:z6Mk...
      dmsnode peers connect /ip4/127.0.0.1/tcp/9000
    """


@peers.command("list")
@json_option
@gateway_options
@pass_app
def peers_list(app: App, as_json: bool, api: str | None, key_name: str) -> None:
    """The peers the node knows, connected ones first.

    \b
    Examples:
      dmsnode peers list
      dmsnode peers list --json
      dmsnode peers list --api http://127.0.0.1:9998
    """
    rows = call_node(app, api, key_name, "/dms/node/peers/list")
    if as_json:
        print_json(rows)
        return
    rows = sorted(rows, key=lambda p: (not p["connected"], p["did"]))
    print_table(
        ["DID", "CONNECTED", "RTT", "LAST SEEN", "ADDRESSES"],
        [
            [
                p["did"],
                "yes" if p["connected"] else "no",
                "-" if p["rtt_ms"] is None else f"{p['rtt_ms']:.1f} ms",
                _ago(p["last_seen"]),
                ", ".join(p["addresses"]) or "-",
            ]
            for p in rows
        ],
        empty="no peers yet (bootstrap peers come from p2p.bootstrap_peers or BOOTSTRAP_PEERS)",
    )


@peers.command("self")
@json_option
@gateway_options
@pass_app
def peers_self(app: App, as_json: bool, api: str | None, key_name: str) -> None:
    """This node's DID and addresses.

    \b
    Examples:
      dmsnode peers self
    """
    me = call_node(app, api, key_name, "/dms/node/peers/self")
    if as_json:
        print_json(me)
        return
    click.echo(f"did:       {me['did']}")
    for address in me["addresses"]:
        click.echo(f"address:   {address}/p2p/{me['did']}")


@peers.command("ping")
@click.argument("did")
@json_option
@gateway_options
@pass_app
def peers_ping(app: App, did: str, as_json: bool, api: str | None, key_name: str) -> None:
    """Measure the round trip to the peer DID.

    \b
    Examples:
      dmsnode peers ping did:key:z6Mk...
    """
    result = call_node(app, api, key_name, "/dms/node/peers/ping", {"did": did})
    if as_json:
        print_json(result)
    else:
        click.echo(f"{did}: {result['rtt_ms']:.1f} ms")


@peers.command("connect")
@click.argument("address")
@json_option
@gateway_options
@pass_app
def peers_connect(app: App, address: str, as_json: bool, api: str | None, key_name: str) -> None:
    """Connect to the node at ADDRESS (a multiaddr).

    \b
    Examples:
      dmsnode peers connect /ip4/127.0.0.1/tcp/9000
      dmsnode peers connect /ip4/10.0.0.2/tcp/9000/p2p/did:key:z6Mk...
    """
    result = call_node(app, api, key_name, "/dms/node/peers/connect", {"address": address})
    if as_json:
        print_json(result)
    else:
        click.echo(f"connected to {result['did']}")
