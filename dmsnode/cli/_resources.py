"""``dmsnode onboard``, ``offboard`` and ``resources``: the share of this machine the node offers."""

from __future__ import annotations

from typing import Any

import click

from ..resources import Resources, format_bytes, format_cores, format_hz, parse_bytes
from ._app import App, pass_app
from ._gateway import call_node, gateway_options
from ._output import json_option, print_json, print_table


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_bytes(value, default_unit="GiB")
    except Exception as exc:
        raise click.BadParameter(str(exc)) from None


def _gpu_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Any]:
    if not value:
        return []
    names: list[Any] = []
    for part in value.split(","):
        part = part.strip()
        names.append(int(part) if part.isdigit() else part)
    return names


@click.command()
@click.option("--cpu-cores", type=float, required=True, help="Cores to offer (at least 1).")
@click.option(
    "--ram", callback=_size, required=True, help="RAM to offer: 8GiB, 512MiB (plain numbers: GiB)."
)
@click.option(
    "--disk", callback=_size, required=True, help="Disk to offer in the work directory: 50GiB."
)
@click.option("--gpus", callback=_gpu_list, help="GPUs to offer: indices (0,1) or keys (nvidia:0).")
@click.option("--no-gpu", is_flag=True, help="Offer no GPU (the default unless --gpus is given).")
@json_option
@gateway_options
@pass_app
def onboard(
    app: App,
    cpu_cores: float,
    ram: int,
    disk: int,
    gpus: list[Any],
    no_gpu: bool,
    as_json: bool,
    api: str | None,
    key_name: str,
) -> None:
    """Offer a share of this machine to the network (or change the share offered).

    Limits: at least 1 core and at most the machine's; RAM between 10% and 90% of the machine's;
    disk within the work directory's free space; never below what is allocated now. A refused
    request names the limit it broke.

    \b
    Examples:
      dmsnode onboard --cpu-cores 2 --ram 4GiB --disk 20GiB
      dmsnode onboard --cpu-cores 8 --ram 32GiB --disk 200GiB --gpus 0,1
      dmsnode onboard --cpu-cores 1 --ram 2 --disk 10 --no-gpu --json
    """
    if no_gpu and gpus:
        raise click.UsageError("--gpus and --no-gpu contradict each other")
    body = {"cpu_cores": cpu_cores, "ram": ram, "disk": disk, "gpus": [] if no_gpu else gpus}
    result = call_node(app, api, key_name, "/dms/node/onboarding/onboard", body)
    if as_json:
        print_json(result)
        return
    click.echo("onboarded:")
    _print_resources(Resources.from_dict(result["onboarded"]))


@click.command()
@click.option("--force", is_flag=True, help="Also stop the allocations running now.")
@json_option
@gateway_options
@pass_app
def offboard(app: App, force: bool, as_json: bool, api: str | None, key_name: str) -> None:
    """Stop offering this machine's resources (refused while allocations run, unless --force).

    \b
    Examples:
      dmsnode offboard
      dmsnode offboard --force
    """
    result = call_node(app, api, key_name, "/dms/node/onboarding/offboard", {"force": force})
    if as_json:
        print_json(result)
    elif result["stopped"]:
        click.echo(
            f"offboarded; stopped {len(result['stopped'])} allocation(s): {', '.join(result['stopped'])}"
        )
    else:
        click.echo("offboarded")


_VIEWS = {
    "onboarded": "/dms/node/resources/onboarded",
    "free": "/dms/node/resources/free",
    "allocated": "/dms/node/resources/allocated",
    "hardware": "/dms/node/hardware/spec",
    "usage": "/dms/node/hardware/usage",
}


@click.command()
@click.argument("view", type=click.Choice(list(_VIEWS)), default="onboarded")
@json_option
@gateway_options
@pass_app
def resources(app: App, view: str, as_json: bool, api: str | None, key_name: str) -> None:
    """Show the node's resources: onboarded (default), free, allocated, hardware or usage.

    \b
    Examples:
      dmsnode resources
      dmsnode resources free
      dmsnode resources hardware --json
      dmsnode resources usage
    """
    result = call_node(app, api, key_name, _VIEWS[view])
    if as_json:
        print_json(result)
        return
    if view == "onboarded":
        if result is None:
            click.echo("not onboarded: offer a share with 'dmsnode onboard'")
        else:
            _print_resources(Resources.from_dict(result))
    elif view == "free":
        _print_resources(Resources.from_dict(result))
    elif view == "allocated":
        click.echo("allocated:")
        _print_resources(Resources.from_dict(result["allocated"]))
        click.echo("committed:")
        _print_resources(Resources.from_dict(result["committed"]))
        rows = [[a["alloc_id"], "allocated"] for a in result["allocations"]]
        rows += [[c["alloc_id"], "committed"] for c in result["commitments"]]
        print_table(["ALLOCATION", "STATE"], rows)
    elif view == "hardware":
        _print_hardware(result)
    else:
        click.echo(
            f"cpu:   {result['cpu_percent']:.0f}%  (load {', '.join(f'{x:.2f}' for x in result['load_average'])})"
        )
        click.echo(
            f"ram:   {format_bytes(result['ram_used'])} of {format_bytes(result['ram_total'])}"
        )
        click.echo(
            f"disk:  {format_bytes(result['disk_used'])} of {format_bytes(result['disk_total'])}"
        )


def _print_resources(amount: Resources) -> None:
    click.echo(
        f"  cpu:   {format_cores(amount.cpu_cores)}"
        + (f" @ {format_hz(amount.cpu_hz)}" if amount.cpu_hz else "")
    )
    click.echo(f"  ram:   {format_bytes(amount.ram)}")
    click.echo(f"  disk:  {format_bytes(amount.disk)}")
    if amount.gpus:
        for gpu in amount.gpus:
            click.echo(f"  gpu:   {gpu.key} {gpu.model} ({format_bytes(gpu.vram)})")
    else:
        click.echo("  gpu:   none")


def _print_hardware(spec: dict[str, Any]) -> None:
    click.echo(f"machine: {spec['cpu_model'] or 'unknown CPU'} ({spec['os']}, {spec['arch']})")
    _print_resources(Resources.from_dict(spec["resources"]))
    click.echo(f"  disk free: {format_bytes(spec['disk_free'])}")
    executors = spec.get("executors") or {}
    for name, info in sorted(executors.items()):
        state = "available" if info.get("available") else f"unavailable: {info.get('reason', '')}"
        click.echo(f"  executor {name}: {state}")
    for warning in spec.get("warnings", []):
        click.echo(f"  warning: {warning}")
