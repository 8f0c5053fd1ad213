"""``dmsnode actor``: send, invoke and broadcast behaviours through the node's gateway."""

from __future__ import annotations

import json
from typing import Any

import click

from ._app import App, pass_app
from ._gateway import client, gateway_options, signer
from ._output import json_option, print_json


def _print(data: Any, as_json: bool) -> None:
    """A reply body: indented for people, one compact line with --json."""
    if as_json:
        click.echo(json.dumps(data, separators=(",", ":"), sort_keys=True, default=str))
    else:
        print_json(data)


def _body(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc.msg} at column {exc.colno})") from None


def _target_options(f: Any) -> Any:
    f = click.option("--body", callback=_body, help="The body, as JSON.")(f)
    f = click.option("--actor", default="root", show_default=True, help="The actor's name.")(f)
    return click.option("--to", help="The DID of the node hosting the actor (default: this node).")(
        f
    )


@click.group()
def actor() -> None:
    """Call behaviours on any node, signed with your key, through the local node.

    \b
    Examples:
      dmsnode actor invoke /dms/node/status
      dmsnode actor invoke /public/hello --to did:key:z6Mk...
      dmsnode actor send /dms/node/peers/connect --body '{"address": "/ip4/10.0.0.2/tcp/9000"}'
      dmsnode actor broadcast /broadcast/hello --topic /nunet/hello
    """


@actor.command("invoke")
@click.argument("behaviour")
@_target_options
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait.")
@json_option
@gateway_options
@pass_app
def actor_invoke(
    app: App,
    behaviour: str,
    to: str | None,
    actor: str,
    body: Any,
    timeout: float,
    as_json: bool,
    api: str | None,
    key_name: str,
) -> None:
    """Invoke BEHAVIOUR and print the reply (JSON).

    \b
    Examples:
      dmsnode actor invoke /dms/node/status
      dmsnode actor invoke /public/hello --to did:key:z6Mk...
      dmsnode actor cmd /dms/node/peers/ping --body '{"did": "did:key:z6Mk..."}' --json
    """
    node = client(app, api)
    identity, trust = signer(app, key_name)
    envelope = node.envelope(
        identity,
        behaviour,
        body,
        to=to,
        actor=actor,
        reply=True,
        trust=trust,
        ttl_ms=int(timeout * 1000),
    )
    _print(node.invoke(envelope, timeout=timeout), as_json)


@actor.command("send")
@click.argument("behaviour")
@_target_options
@json_option
@gateway_options
@pass_app
def actor_send(
    app: App,
    behaviour: str,
    to: str | None,
    actor: str,
    body: Any,
    as_json: bool,
    api: str | None,
    key_name: str,
) -> None:
    """Send BEHAVIOUR without waiting for a reply.

    \b
    Examples:
      dmsnode actor send /dms/node/peers/connect --body '{"address": "/ip4/10.0.0.2/tcp/9000"}'
    """
    node = client(app, api)
    identity, trust = signer(app, key_name)
    accepted = node.send(
        node.envelope(identity, behaviour, body, to=to, actor=actor, reply=False, trust=trust)
    )
    _print(accepted, as_json)


@actor.command("broadcast")
@click.argument("behaviour")
@click.option("--topic", required=True, help="The gossip topic, such as /nunet/hello.")
@click.option("--body", callback=_body, help="The body, as JSON.")
@json_option
@gateway_options
@pass_app
def actor_broadcast(
    app: App, behaviour: str, topic: str, body: Any, as_json: bool, api: str | None, key_name: str
) -> None:
    """Broadcast BEHAVIOUR on TOPIC to every subscribed node.

    \b
    Examples:
      dmsnode actor broadcast /broadcast/hello --topic /nunet/hello
      dmsnode actor broadcast /broadcast/hello --topic /nunet/hello --body '{"note": "hi"}'
    """
    node = client(app, api)
    identity, trust = signer(app, key_name)
    envelope = node.envelope(identity, behaviour, body, reply=False, topic=topic, trust=trust)
    _print(node.broadcast(envelope), as_json)


# NuNet's CLI calls it ``actor cmd``: the same command under that name.
actor.add_command(actor_invoke, name="cmd")
