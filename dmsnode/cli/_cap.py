"""``dmsnode cap``: capability contexts, their anchors, grants and delegations (UCAN 1.0).

A context named C lives at ``<user_dir>/cap/C.json`` and is used with the key named C (so
``dms`` is the node's context and ``user`` a person's). See docs/capabilities.md, "Trust
contexts and anchors", for the model and a worked example.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from nuactor import Anchor, Delegation, TrustContext, public_key_from_did
from nuactor.errors import InvalidDid
from nuactor.ucan import InvalidCommand, InvalidPolicy, Policy, check_command

from ..errors import DmsError
from ._app import App, pass_app
from ._output import json_option, print_json, print_table
from ._prompt import passphrase

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_EXPIRY: Final = "30d"
_UNITS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_DURATION: Final = re.compile(r"^(?:\d+[wdhms])+$")
_PART: Final = re.compile(r"(\d+)([wdhms])")


# --- option parsing --------------------------------------------------------------------------


def parse_expiry(value: str, *, now: int | None = None) -> int | None:
    """``never``, a duration from now (``30d``, ``12h``, ``1d12h``; units w d h m s) or an RFC
    3339 time (``2026-01-01T00:00:00Z``; a bare date is midnight UTC), as Unix seconds."""
    text = value.strip()
    t = int(datetime.datetime.now(tz=datetime.UTC).timestamp()) if now is None else now
    if text.lower() == "never":
        return None
    if _DURATION.match(text):
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text))
        if seconds <= 0:
            raise ValueError(f"{value!r} is not a positive duration")
        return t + seconds
    try:
        moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{value!r} is neither 'never', a duration such as 30d or 12h, nor an RFC 3339 time"
            " such as 2026-01-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        if "T" in text or " " in text:
            raise ValueError(f"{value!r} has no time zone: end it with Z or an offset like +02:00")
        moment = moment.replace(tzinfo=datetime.UTC)
    stamp = int(moment.timestamp())
    if stamp <= t:
        raise ValueError(f"{value!r} is in the past")
    return stamp


def _expiry_callback(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    try:
        return parse_expiry(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _did_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        public_key_from_did(value)
    except InvalidDid as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _command_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_command(value)
    except InvalidCommand as exc:
        raise click.BadParameter(str(exc)) from None


def _policy_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Policy:
    if value is None:
        return Policy()
    try:
        return Policy.parse(json.loads(value))
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    except InvalidPolicy as exc:
        raise click.BadParameter(str(exc)) from None


def _context_option(f: F) -> F:
    return click.option(
        "--context",
        "-c",
        "context",
        default="user",
        show_default=True,
        help="Capability context (and key) to use: 'dms' for the node, 'user' for a person.",
    )(f)


def _issue_options(f: F) -> F:
    """What ``grant`` and ``delegate`` share."""
    for option in reversed(
        [
            click.option(
                "--to",
                "to",
                required=True,
                callback=_did_callback,
                help="DID of the principal receiving the capability.",
            ),
            click.option(
                "--cmd",
                "cmd",
                required=True,
                callback=_command_callback,
                help="Command granted, with everything under it ('/' is everything).",
            ),
            click.option(
                "--policy",
                "policy",
                callback=_policy_callback,
                help='UCAN policy on the call\'s arguments, as JSON: \'[["==", ".image", "nginx"]]\'.',
            ),
            click.option(
                "--expiry",
                "expiry",
                default=DEFAULT_EXPIRY,
                show_default=True,
                callback=_expiry_callback,
                help="'never', a duration (30d, 12h, 1w) or an RFC 3339 time.",
            ),
            click.option(
                "--depth",
                type=click.IntRange(min=0),
                help="How many more times it may be passed on (0: not at all). Unlimited if absent.",
            ),
            json_option,
        ]
    ):
        f = option(f)
    return f


# --- contexts ------------------------------------------------------------------------------------


def context_path(app: App, name: str) -> Path:
    """Where the context ``name`` is kept (the name is checked like a key name)."""
    app.keystore.path(name)  # raises ValueError for a bad name
    return app.user_dir / "cap" / f"{name}.json"


def open_context(app: App, name: str) -> TrustContext:
    """Load the context ``name`` with the key of the same name (asking for its passphrase)."""
    path = context_path(app, name)
    if not path.is_file():
        raise DmsError(
            f"there is no capability context '{name}' at {path}; create it with"
            f" 'dmsnode cap new {name}'"
        )
    identity = app.keystore.load(name, passphrase(confirm=False))
    return TrustContext.load(path, identity)


def _read_token(value: str) -> str:
    """A token argument, or the standard input for ``-``."""
    if value == "-":
        return sys.stdin.read()
    return value


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_did(did: str | None) -> str:
    if did is None:
        return "(any)"
    prefix = "did:key:"
    if did.startswith(prefix) and len(did) > len(prefix) + 20:
        key = did[len(prefix) :]
        return f"{prefix}{key[:12]}…{key[-6:]}"
    return did


def _describe(delegation: Delegation) -> dict[str, Any]:
    return {
        "cid": str(delegation.cid),
        "iss": delegation.iss,
        "aud": delegation.aud,
        "sub": delegation.sub,
        "cmd": delegation.cmd,
        "pol": delegation.pol.to_ipld(),
        "exp": delegation.exp,
        "expires": _when(delegation.exp),
        "meta": dict(delegation.meta) if delegation.meta else {},
    }


def _status(anchor: Anchor) -> str:
    if anchor.revoked:
        return "revoked"
    return "expired" if anchor.expired() else "active"


# --- commands ------------------------------------------------------------------------------------


@click.group()
def cap() -> None:
    """Manage capability contexts: who this node trusts and what it can prove (UCAN 1.0).

    A context named C is kept in <user_dir>/cap/C.json and signs with the key named C. Anchors:
    a ROOT anchor trusts a DID fully; a REQUIRE anchor accepts calls from a DID (often an
    organisation) for a command; a PROVIDE anchor is a delegation given to this context, used to
    prove its own calls.

    \b
    Examples (the node 'dms' trusts its owner and the members of an organisation):
      dmsnode cap new dms
      dmsnode cap anchor -c dms --root did:key:z6MkOwner…
      dmsnode cap grant -c dms --to did:key:z6MkOrg… --cmd /dms/deployment   # prints TOKEN
      dmsnode cap anchor -c dms --require TOKEN
      dmsnode cap grant -c org --to did:key:z6MkUser… --cmd /dms/deployment --powerline
      dmsnode cap anchor -c user --provide TOKEN2     # the user keeps what the org gave
      dmsnode cap list -c dms
    """


@cap.command("new")
@click.argument("context")
@click.option("--force", is_flag=True, help="Replace an existing context (its anchors are lost).")
@json_option
@pass_app
def cap_new(app: App, context: str, force: bool, as_json: bool) -> None:
    """Create the empty capability context CONTEXT for the key of the same name.

    \b
    Examples:
      dmsnode key new dms && dmsnode cap new dms
      dmsnode cap new user --force
    """
    path = context_path(app, context)
    if path.exists() and not force:
        raise DmsError(
            f"capability context '{context}' exists already at {path}; pass --force to replace"
            " it (its anchors are lost)"
        )
    identity = app.keystore.load(context, passphrase(confirm=False))
    TrustContext(identity, path=path).save()
    if as_json:
        print_json({"context": context, "did": identity.did, "path": str(path)})
    else:
        click.echo(f"created capability context '{context}' for {identity.did} at {path}")


@cap.command("anchor")
@_context_option
@click.option("--root", "root", callback=_did_callback, help="DID to trust fully ('/').")
@click.option("--require", "require", help="Token this node issued ('cap grant'), or '-'.")
@click.option(
    "--provide", "provide", help="Token or bundle given to this context ('cap delegate'), or '-'."
)
@json_option
@pass_app
def cap_anchor(
    app: App,
    context: str,
    root: str | None,
    require: str | None,
    provide: str | None,
    as_json: bool,
) -> None:
    """Add an anchor to a context (exactly one of --root, --require, --provide).

    --root DID issues and keeps a delegation of everything ('/') from this context to DID.
    --require TOKEN keeps a delegation this context issued, so that its audience (and whoever
    it passes it on to) may call. --provide TOKEN keeps a delegation (or a comma-separated
    chain, root first) granted to this context, to prove its own calls. '-' reads the standard
    input.

    \b
    Examples:
      dmsnode cap anchor -c dms --root did:key:z6Mk…
      dmsnode cap anchor -c dms --require "$(dmsnode cap grant -c dms --to $ORG --cmd /dms)"
      dmsnode cap delegate -c alice --to $BOB --cmd /dms/node | dmsnode cap anchor -c bob --provide -
    """
    given = [
        (kind, value)
        for kind, value in (("root", root), ("require", require), ("provide", provide))
        if value is not None
    ]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --root, --require or --provide")
    kind, value = given[0]
    trust = open_context(app, context)
    if kind == "root":
        delegation = trust.add_root(value)
    elif kind == "require":
        delegation = trust.add_require(_read_token(value))
    else:
        delegation = trust.add_provide(_read_token(value))
    trust.save()
    if as_json:
        print_json({"kind": kind, **_describe(delegation)})
    else:
        click.echo(f"added {kind} anchor {delegation.cid} ({delegation.cmd} to {delegation.aud})")


@cap.command("grant")
@_context_option
@_issue_options
@click.option(
    "--powerline",
    is_flag=True,
    help="Grant over no particular subject, for an organisation's grants to its members.",
)
@pass_app
def cap_grant(
    app: App,
    context: str,
    to: str,
    cmd: str,
    policy: Policy,
    expiry: int | None,
    depth: int | None,
    as_json: bool,
    powerline: bool,
) -> None:
    """Issue a delegation from this context to DID and print it as a token.

    The token is what 'cap anchor --require' (on this context) or 'cap anchor --provide' (on
    the receiver's) takes. Nothing is stored. A node's grant is about the node itself; an
    organisation grants its members with --powerline, and each node that requires the
    organisation completes the chain with its own require anchor.

    --depth N (UCAN 1.0 has no depth field) is written into the token's meta as "depth" and
    enforced by nuactor nodes: the grant may be passed on N more times.

    \b
    Examples:
      dmsnode cap grant -c dms --to did:key:z6Mk… --cmd /dms/deployment --expiry 30d
      dmsnode cap grant -c dms --to did:key:z6Mk… --cmd /dms --policy '[["<=", ".cpu", 4]]'
      dmsnode cap grant -c org --to did:key:z6Mk… --cmd /dms/deployment --powerline --depth 0
    """
    trust = open_context(app, context)
    delegation = trust.grant(to, cmd, policy, expiration=expiry, depth=depth, powerline=powerline)
    token = TrustContext.bundle_text([delegation])
    if as_json:
        print_json({**_describe(delegation), "token": token})
    else:
        click.echo(token)


@cap.command("delegate")
@_context_option
@_issue_options
@pass_app
def cap_delegate(
    app: App,
    context: str,
    to: str,
    cmd: str,
    policy: Policy,
    expiry: int | None,
    depth: int | None,
    as_json: bool,
) -> None:
    """Pass on part of a provide anchor to DID, and print the chain as a bundle.

    The new delegation extends the shortest usable provide anchor covering --cmd; its expiry
    is never later than that chain's. The output is the whole chain, root first, comma
    separated: what 'cap anchor --provide' takes on the receiver's side.

    \b
    Examples:
      dmsnode cap delegate -c user --to did:key:z6MkLaptop… --cmd /dms/deployment
      dmsnode cap delegate -c dms --to did:key:z6Mk… --cmd /dms/node/peers --expiry 1d
    """
    trust = open_context(app, context)
    delegation, chain = trust.delegate(to, cmd, policy, expiration=expiry, depth=depth)
    bundle = TrustContext.bundle_text([*chain, delegation])
    if as_json:
        print_json(
            {
                **_describe(delegation),
                "token": TrustContext.bundle_text([delegation]),
                "bundle": bundle,
                "chain": [str(d.cid) for d in chain],
            }
        )
    else:
        click.echo(bundle)


@cap.command("list")
@_context_option
@json_option
@pass_app
def cap_list(app: App, context: str, as_json: bool) -> None:
    """List the anchors and revocations of a context.

    \b
    Examples:
      dmsnode cap list -c dms
      dmsnode cap list -c user --json
    """
    trust = open_context(app, context)
    anchors = trust.anchors()
    known = {a.cid for a in anchors}
    revoked = [cid for cid in trust.revoked() if cid not in known]
    if as_json:
        print_json(
            {
                "context": context,
                "did": trust.did,
                "anchors": [
                    {
                        "kind": a.kind,
                        "status": _status(a),
                        **_describe(a.delegation),
                        "chain": [str(d.cid) for d in a.chain],
                    }
                    for a in anchors
                ],
                "revoked": trust.revoked(),
            }
        )
        return
    rows: list[list[str]] = [
        [
            a.kind,
            a.cid,
            f"{_short_did(a.delegation.iss)} → {_short_did(a.delegation.aud)}",
            a.delegation.cmd,
            _when(a.delegation.exp),
            _status(a),
        ]
        for a in anchors
    ]
    rows += [["revoked", cid, "", "", "", "revoked"] for cid in revoked]
    print_table(
        ["KIND", "CID", "ISSUER → AUDIENCE", "CMD", "EXPIRES", "STATUS"],
        rows,
        empty=f"capability context '{context}' ({trust.did}) has no anchors",
    )


@cap.command("revoke")
@_context_option
@click.argument("cid")
@pass_app
def cap_revoke(app: App, context: str, cid: str) -> None:
    """Refuse, from now on, every chain containing the delegation CID.

    Revocation is local to this context (this node stops accepting the delegation); tell the
    other nodes to revoke it too.

    \b
    Examples:
      dmsnode cap revoke -c dms bafyrei…
    """
    trust = open_context(app, context)
    text = trust.revoke(cid)
    trust.save()
    click.echo(f"revoked {text}")


@cap.command("remove")
@_context_option
@click.argument("cid")
@pass_app
def cap_remove(app: App, context: str, cid: str) -> None:
    """Take the anchor CID out of a context (this is not a revocation).

    \b
    Examples:
      dmsnode cap remove -c dms bafyrei…
    """
    trust = open_context(app, context)
    anchor = trust.remove(cid)
    trust.save()
    click.echo(f"removed {anchor.kind} anchor {anchor.cid}")
