"""``dmsnode key``: create and inspect the node's and users' keys."""

from __future__ import annotations

import click

from ._app import App, pass_app
from ._output import json_option, print_json, print_table
from ._prompt import passphrase


@click.group()
def key() -> None:
    """Manage keys (Ed25519 identities, encrypted at rest).

    \b
    Examples:
      dmsnode key new dms          # the node's own key
      dmsnode key new user
      dmsnode key list
      dmsnode key did dms
    """


@key.command("new")
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace an existing key of that name.")
@json_option
@pass_app
def key_new(app: App, name: str, force: bool, as_json: bool) -> None:
    """Create the key NAME and print its DID.

    The passphrase comes from DMS_PASSPHRASE, else it is asked for twice.

    \b
    Examples:
      dmsnode key new dms
      dmsnode key new user --force
      DMS_PASSPHRASE=... dmsnode key new dms --json
    """
    store = app.keystore
    store.path(name)  # refuse a bad name before asking for a passphrase
    if store.exists(name) and not force:
        raise click.ClickException(
            f"key '{name}' exists already at {store.path(name)}; pass --force to replace it"
        )
    identity = store.create(name, passphrase(confirm=True), force=force)
    if as_json:
        print_json({"name": name, "did": identity.did, "path": str(store.path(name))})
    else:
        click.echo(identity.did)


@key.command("list")
@json_option
@pass_app
def key_list(app: App, as_json: bool) -> None:
    """List the keys in the keystore with their DIDs.

    \b
    Examples:
      dmsnode key list
      dmsnode --user-dir /srv/node1 key list --json
    """
    keys = app.keystore.list()
    if as_json:
        print_json([{"name": k.name, "did": k.did, "path": str(k.path)} for k in keys])
        return
    print_table(
        ["NAME", "DID"],
        [[k.name, k.did] for k in keys],
        empty=f"no keys in {app.keystore.directory}; create one with 'dmsnode key new NAME'",
    )


@key.command("did")
@click.argument("name")
@json_option
@pass_app
def key_did(app: App, name: str, as_json: bool) -> None:
    """Print the DID of the key NAME.

    The key is decrypted (so the passphrase is needed): the DID printed is the one of the key
    itself, not a label in the file that anyone could edit. 'key list' shows the labels.

    \b
    Examples:
      dmsnode key did dms
      dmsnode key did user --json
    """
    did = app.keystore.load(name, passphrase(confirm=False)).did
    if as_json:
        print_json({"name": name, "did": did})
    else:
        click.echo(did)
