"""``dmsnode validate``: check an ensemble file and print every problem in it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import click

from ..ensemble import MAX_TEXT_BYTES, Ensemble, SpecError, parse
from ..ensemble import validate as validate_text
from ..resources import format_bytes, format_cores, format_hz
from ._output import json_option, print_json


@click.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def validate(file: Path, as_json: bool) -> None:
    """Check the ensemble FILE (NuNet v1 YAML) and print every problem in it.

    Each problem is one line, PATH:LINE: MESSAGE, where PATH is the place in the file
    (allocations.web.resources.ram.size). Exit 1 if there is any; otherwise exit 0 with a
    summary of the allocations, nodes and resources asked.

    \b
    Examples:
      dmsnode validate examples/ensembles/hello.yaml
      dmsnode validate my-ensemble.yaml --json
    """
    text = _read(file)
    errors = validate_text(text)
    if errors:
        _report_errors(file, errors, as_json)
        raise SystemExit(1)
    ensemble = parse(text)
    if as_json:
        print_json({"file": str(file), "valid": True, **_summary(ensemble)})
        return
    summary = _summary(ensemble)
    asked = summary["resources"]
    kinds = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in summary["types"].items())
    click.echo(f"{file}: valid ensemble ({ensemble.version})")
    click.echo(
        f"  {_count(summary['allocations'], 'allocation')} ({kinds}),"
        f" {_count(summary['nodes'], 'node')}; executors: {', '.join(summary['executors'])}"
    )
    gpus = _count(asked["gpus"], "GPU") if asked["gpus"] else "no GPU"
    clock = f" at {format_hz(asked['cpu_hz'])}" if asked["cpu_hz"] else ""
    click.echo(
        f"  asks for {format_cores(asked['cpu_cores'])}{clock}, {format_bytes(asked['ram'])} RAM,"
        f" {format_bytes(asked['disk'])} disk, {gpus}"
        + (" (redundant copies included)" if summary["redundant_copies"] else "")
    )


def _read(file: Path) -> bytes:
    try:
        with file.open("rb") as stream:
            # One byte past the limit is enough for the reader to refuse the file as too large.
            return stream.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None


def _report_errors(file: Path, errors: list[SpecError], as_json: bool) -> None:
    if as_json:
        print_json({"file": str(file), "valid": False, "errors": [e.to_dict() for e in errors]})
        return
    for error in errors:
        click.echo(str(error))
    click.echo(f"{file}: {_count(len(errors), 'error')}", err=True)


def _summary(ensemble: Ensemble) -> dict[str, Any]:
    total = ensemble.total()
    allocations = ensemble.allocations.values()
    return {
        "allocations": len(ensemble.allocations),
        "nodes": len(ensemble.nodes),
        "types": dict(sorted(Counter(a.type for a in allocations).items())),
        "executors": sorted({a.executor for a in allocations}),
        "redundant_copies": sum(n.redundancy for n in ensemble.nodes.values()),
        "resources": {
            "cpu_cores": total.cpu_cores,
            "cpu_hz": total.cpu_hz,
            "ram": total.ram,
            "disk": total.disk,
            "gpus": ensemble.gpu_count(),
        },
    }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
