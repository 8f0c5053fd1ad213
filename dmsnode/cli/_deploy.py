"""``dmsnode deploy`` and ``dmsnode deployments``: ensembles deployed by the local node's
orchestrator, followed, inspected and stopped.

Every command goes through the node's actor gateway, signed with the user's key, to the
orchestrator's behaviours (``/dms/node/deployment/*``). ``--wait`` polls the deployment's status
every half second and prints a line for each change only.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, NoReturn

import click

from ..ensemble import validate as validate_text
from ..errors import RequestRefused
from ._app import App, pass_app
from ._gateway import client, gateway_options, signer
from ._output import json_option, print_json, print_table
from ._validate import _count, _read

#: Seconds between two status polls while waiting.
POLL: Final = 0.5
#: Exit code when ``--wait`` gave up before the deployment got where it was waited for.
EXIT_TIMEOUT: Final = 2
TERMINAL: Final = frozenset({"Completed", "Failed"})
#: Where ``deploy --wait`` stops: the deployment runs, or is over.
DEPLOYED: Final = frozenset({"Running", *TERMINAL})
_DESCRIPTION_WIDTH: Final = 48
_RECENT: Final = 5


class _Session:
    """The node's API and the user's key, loaded once: a poll every half second must not ask
    for the passphrase (or derive the key) again."""

    def __init__(self, app: App, api: str | None, key_name: str) -> None:
        self._client = client(app, api)
        self._identity, self._trust = signer(app, key_name)

    def call(self, beh: str, body: Any = None, *, hint: str = "") -> Any:
        """Invoke ``/dms/node/deployment/<beh>``; a refusal says what to do about it."""
        node = self._client
        envelope = node.envelope(
            self._identity, f"/dms/node/deployment/{beh}", body, reply=True, trust=self._trust
        )
        try:
            return node.invoke(envelope)
        except RequestRefused as exc:
            raise _explained(exc, hint) from None


def _explained(exc: RequestRefused, hint: str) -> click.ClickException:
    if exc.error == "UnknownDeployment":
        return click.ClickException(
            f"{exc.detail}: 'dmsnode deployments list' shows the deployments this node runs"
        )
    if exc.error == "UnknownBehaviour":
        return click.ClickException(
            f"the node does not orchestrate deployments ({exc.detail}): it is an older dmsnode, "
            "or runs without a store; upgrade it or start it with 'dmsnode run'"
        )
    message = f"{exc.error}: {exc.detail}"
    return click.ClickException(f"{message} ({hint})" if hint else message)


# --- dmsnode deploy ----------------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--wait",
    is_flag=True,
    help="Follow the deployment, printing each change, until it runs (exit 0), completes "
    "(exit 0) or fails (exit 1).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --wait: stop waiting after SECONDS (exit 2; the deployment goes on).",
)
@click.option(
    "--deadline",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="The deployment fails unless it runs within SECONDS "
    "(default: the node's orchestrator.deployment_timeout).",
)
@json_option
@gateway_options
@pass_app
def deploy(
    app: App,
    file: Path,
    wait: bool,
    timeout: float | None,
    deadline: float | None,
    as_json: bool,
    api: str | None,
    key_name: str,
) -> None:
    """Deploy the ensemble FILE (NuNet v1 YAML) with the local node's orchestrator.

    The file is checked first, as 'dmsnode validate' does: a file with problems is not sent
    (every problem is printed; exit 1). Otherwise the node chooses providers and starts the
    allocations; the command prints the deployment's id. With --wait it follows the deployment
    until it runs or completes (exit 0), fails (exit 1, with the reason) or --timeout passes
    (exit 2, saying what it still waits for; the deployment goes on).

    \b
    Examples:
      dmsnode deploy examples/ensembles/hello.yaml
      dmsnode deploy hello.yaml --wait
      dmsnode deploy hello.yaml --wait --timeout 60 --json
      dmsnode deploy hello.yaml --deadline 600
    """
    if timeout is not None and not wait:
        raise click.UsageError(
            "--timeout limits how long --wait waits: add --wait "
            "(to limit how long the deployment may take to start, use --deadline)"
        )
    text = _read(file)
    errors = validate_text(text)
    if errors:
        if as_json:
            print_json({"file": str(file), "valid": False, "errors": [e.to_dict() for e in errors]})
        else:
            for error in errors:
                click.echo(str(error))
        click.echo(
            f"{file}: {_count(len(errors), 'error')}; nothing was deployed "
            f"(fix the file and run 'dmsnode deploy {file}' again)",
            err=True,
        )
        raise SystemExit(1)
    session = _Session(app, api, key_name)
    body: dict[str, Any] = {"ensemble": text.decode("utf-8")}
    if deadline is not None:
        body["timeout"] = deadline
    summary = session.call("new", body)
    id = summary["id"]
    if not wait:
        if as_json:
            print_json(summary)
            return
        click.echo(
            f"deployment {id} created: {summary['state']} "
            f"({_count(summary['nodes'], 'node')}, {_count(summary['allocations'], 'allocation')})"
        )
        _hints(id, follow=True)
        return
    if not as_json:
        click.echo(f"deployment {id} created; waiting until it runs (Ctrl-C stops waiting only)")
    progress = _Progress(echo=not as_json)
    status = _follow(session, id, DEPLOYED, timeout, progress)
    if as_json:
        print_json(status)
    if status["state"] == "Failed":
        raise click.ClickException(f"deployment {id} failed: {status['reason'] or 'no reason'}")
    if not as_json:
        if status["state"] == "Running":
            click.echo(f"deployment {id} is running")
        else:
            click.echo(f"deployment {id} completed")
        _hints(id, follow=status["state"] == "Running")


def _hints(id: str, *, follow: bool) -> None:
    if follow:
        click.echo(f"  follow it:  dmsnode deployments status {id}")
    click.echo(f"  its output: dmsnode deployments logs {id}")
    if follow:
        click.echo(f"  stop it:    dmsnode deployments shutdown {id}")


# --- following a deployment --------------------------------------------------------------------


class _Progress:
    """Prints what changed in a deployment since the last status it saw: new history entries
    (a note repeated by each placement round only once), the bids received, each slot's
    provider and state, each allocation's state."""

    def __init__(self, *, echo: bool) -> None:
        self.echo = echo
        self._history: set[tuple[float, str]] = set()
        self._last_note = ""
        self._bids = 0
        self._seen: dict[str, str] = {}

    def update(self, status: dict[str, Any], *, quiet: bool = False) -> None:
        """Take ``status`` (print nothing if ``quiet``: the baseline to follow changes from)."""
        created = float(status.get("created_at") or 0.0)
        lines: list[tuple[float, str]] = []
        for entry in status.get("history", []):
            key = (float(entry.get("time", 0.0)), str(entry.get("text", "")))
            if key in self._history:
                continue
            self._history.add(key)
            if key[1] == self._last_note:
                continue
            self._last_note = key[1]
            lines.append((key[0], f"{entry.get('state', '?')}: {key[1]}"))
        now = time.time()
        bids = int(status.get("bids") or 0)
        if bids != self._bids:
            self._bids = bids
            # Bids come in while Preparing: before the news of the states after it.
            later = [i for i, (_, text) in enumerate(lines) if not text.startswith("Preparing:")]
            at = later[0] if later else len(lines)
            lines.insert(at, (lines[at][0] if later else now, f"bids received: {bids}"))
        for slot, node in sorted((status.get("nodes") or {}).items()):
            described = f"{node.get('state')} on {_short(str(node.get('provider')))}"
            if self._changed(slot, described):
                lines.append((now, f"{slot}: {described}"))
            for name, allocation in sorted((node.get("allocations") or {}).items()):
                if self._changed(f"{slot}/{name}", _allocation_state(allocation)):
                    lines.append((now, f"{slot}/{name}: {_allocation_state(allocation)}"))
        if self.echo and not quiet:
            for when, text in lines:
                click.echo(f"{max(0.0, when - created):7.1f}s  {text}")

    def _changed(self, key: str, value: str) -> bool:
        if self._seen.get(key) == value:
            return False
        self._seen[key] = value
        return True


def _follow(
    session: _Session,
    id: str,
    until: frozenset[str],
    timeout: float | None,
    progress: _Progress,
) -> dict[str, Any]:
    """Poll deployment ``id`` until its state is in ``until`` (or terminal): that status. At
    ``timeout`` (seconds), say what it still waits for and exit 2."""
    give_up = None if timeout is None else time.monotonic() + timeout
    while True:
        status: dict[str, Any] = session.call("status", {"id": id})
        progress.update(status)
        if status["state"] in until or status["state"] in TERMINAL:
            return status
        left = None if give_up is None else give_up - time.monotonic()
        if left is not None and left <= 0:
            _timed_out(status, timeout or 0.0, progress)
        time.sleep(POLL if left is None else min(POLL, left))


def _timed_out(status: dict[str, Any], timeout: float, progress: _Progress) -> NoReturn:
    id = status["id"]
    if not progress.echo:  # --json: the status for programs, the explanation for people
        print_json(status)
    click.echo(
        f"deployment {id} is still {status['state']} after {timeout:g} s: {_waiting_for(status)}",
        err=True,
    )
    click.echo(
        f"it goes on: follow it with 'dmsnode deployments status {id}', "
        f"stop it with 'dmsnode deployments shutdown {id}'",
        err=True,
    )
    raise SystemExit(EXIT_TIMEOUT)


def _waiting_for(status: dict[str, Any]) -> str:
    """What a deployment not yet where it was waited for still waits for, in a few words."""
    state = status["state"]
    if state == "ShuttingDown":
        return "its allocations are being stopped and released"
    if status.get("reason"):
        return str(status["reason"])
    starting = [
        f"{slot}/{name} ({allocation.get('state') or 'pending'})"
        for slot, node in sorted((status.get("nodes") or {}).items())
        for name, allocation in sorted((node.get("allocations") or {}).items())
        if allocation.get("state") not in ("running", "completed")
    ]
    if state == "Preparing":
        return f"no provider chosen yet ({_count(int(status.get('bids') or 0), 'bid')} so far)"
    if state == "Committing":
        return "the chosen providers have not all committed yet"
    if starting:
        return "waiting for " + ", ".join(starting) + " to start"
    history = status.get("history") or []
    return str(history[-1]["text"]) if history else "no news from the orchestrator"


def _allocation_state(allocation: dict[str, Any]) -> str:
    """``running, healthy``, ``failed: exit code 1 (OOM)``, ``completed``."""
    state = str(allocation.get("state") or "pending")
    details = []
    if allocation.get("healthy") is True:
        details.append("healthy")
    elif allocation.get("healthy") is False and state == "running":
        details.append("unhealthy")
    code = allocation.get("exit_code")
    if code is not None and (code != 0 or state == "failed"):
        details.append(f"exit code {code}")
    if state == "failed" and allocation.get("reason"):
        details.append(str(allocation["reason"]))
    if allocation.get("restarts"):
        details.append(f"{_count(int(allocation['restarts']), 'restart')}")
    return state + (": " + ", ".join(details) if details else "")


# --- dmsnode deployments -----------------------------------------------------------------------


@click.group()
def deployments() -> None:
    """List, inspect, follow and stop the deployments the local node orchestrates.

    \b
    Examples:
      dmsnode deployments list
      dmsnode deployments status d3f9c2a1b0e4d5c67
      dmsnode deployments logs d3f9c2a1b0e4d5c67 --allocation web
      dmsnode deployments shutdown d3f9c2a1b0e4d5c67 --wait
      dmsnode deployments prune
    """


def _id_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("id", metavar="ID")(f)


@deployments.command("list")
@json_option
@gateway_options
@pass_app
def deployments_list(app: App, as_json: bool, api: str | None, key_name: str) -> None:
    """Every deployment the node orchestrates, oldest first.

    \b
    Examples:
      dmsnode deployments list
      dmsnode deployments list --json
    """
    rows = _Session(app, api, key_name).call("list", {})
    if as_json:
        print_json(rows)
        return
    now = time.time()
    print_table(
        ["ID", "STATE", "AGE", "NODES/ALLOCATIONS", "DESCRIPTION"],
        [
            [
                d["id"],
                d["state"],
                _duration(now - d["created_at"]),
                f"{d['nodes']}/{d['allocations']}",
                _shorten(d.get("description") or "-", _DESCRIPTION_WIDTH),
            ]
            for d in sorted(rows, key=lambda d: d["created_at"])
        ],
        empty="no deployments yet: create one with 'dmsnode deploy FILE'",
    )


@deployments.command("status")
@_id_argument
@json_option
@gateway_options
@pass_app
def deployments_status(app: App, id: str, as_json: bool, api: str | None, key_name: str) -> None:
    """Where deployment ID is: its state, its nodes and allocations, its recent history.

    \b
    Examples:
      dmsnode deployments status d3f9c2a1b0e4d5c67
      dmsnode deployments status d3f9c2a1b0e4d5c67 --json
    """
    status = _Session(app, api, key_name).call("status", {"id": id})
    if as_json:
        print_json(status)
        return
    now = time.time()
    _field("deployment", status["id"])
    _field("state", status["state"])
    if status.get("reason"):
        _field("reason", status["reason"])
    _field(
        "created", f"{_duration(now - status['created_at'])} ago ({_clock(status['created_at'])})"
    )
    if status["state"] in ("Preparing", "Committing", "Provisioning"):
        left = status["deadline"] - now
        when = f"in {_duration(left)}" if left > 0 else "passed"
        _field("deadline", f"{when}: it fails unless it runs by {_clock(status['deadline'])}")
    described = _count(status["allocations"], "allocation")  # here "nodes" maps the slots
    if status.get("description"):
        described += f": {status['description']}"
    _field("ensemble", described)
    _field("bids", f"{status.get('bids', 0)} received")
    click.echo()
    print_table(
        ["NODE", "PROVIDER", "STATE", "PORTS", "ALLOCATION", "ALLOCATION STATE"],
        _node_rows(status.get("nodes") or {}),
        empty="no providers hold it"
        + (" now" if status["state"] in TERMINAL else " yet (see 'reason' and the history)"),
    )
    history = _collapsed(status.get("history") or [])
    if history:
        click.echo()
        click.echo("recent:")
        for entry in history[-_RECENT:]:
            ago = _duration(now - entry["time"])
            click.echo(f"  {ago + ' ago':>9}  {entry['state']:<12}  {entry['text']}")


def _collapsed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History with a note repeated in a row (each placement round's) shown once, counted,
    at the time of its last repetition."""
    out: list[dict[str, Any]] = []
    repeats = 0
    for entry in history:
        last = out[-1] if out else None
        if last is not None and (last["state"], last["base"]) == (entry["state"], entry["text"]):
            repeats += 1
            last.update(time=entry["time"], text=f"{entry['text']} (x{repeats + 1})")
            continue
        repeats = 0
        out.append({**entry, "base": entry["text"]})
    return out


def _node_rows(nodes: dict[str, Any]) -> list[list[str]]:
    rows = []
    for slot, node in sorted(nodes.items()):
        ports = ", ".join(f"{p.get('public')}->{p.get('private')}" for p in node.get("ports") or [])
        first = [slot, str(node.get("provider") or "-"), str(node.get("state")), ports or "-"]
        allocations = sorted((node.get("allocations") or {}).items())
        if not allocations:
            rows.append([*first, "-", "-"])
        for index, (name, allocation) in enumerate(allocations):
            lead = first if index == 0 else ["", "", "", ""]
            rows.append([*lead, name, _allocation_state(allocation)])
    return rows


@deployments.command("manifest")
@_id_argument
@json_option
@gateway_options
@pass_app
def deployments_manifest(app: App, id: str, as_json: bool, api: str | None, key_name: str) -> None:
    """Deployment ID's manifest: the providers chosen, the bids refused or not chosen (with
    why), and its whole history.

    \b
    Examples:
      dmsnode deployments manifest d3f9c2a1b0e4d5c67
      dmsnode deployments manifest d3f9c2a1b0e4d5c67 --json
    """
    manifest = _Session(app, api, key_name).call("manifest", {"id": id})
    if as_json:
        print_json(manifest)
        return
    click.echo(f"deployment {manifest['id']}: {manifest['state']}")
    click.echo(f"bids received: {manifest.get('bids', 0)}")
    nodes = manifest.get("nodes") or {}
    click.echo()
    print_table(
        ["NODE", "PROVIDER", "STATE", "RECOVERIES", "ALLOCATIONS"],
        [
            [
                slot,
                str(node.get("provider") or "-"),
                str(node.get("state")),
                str(node.get("recoveries", 0)),
                ", ".join(sorted(node.get("allocations") or {})) or "-",
            ]
            for slot, node in sorted(nodes.items())
        ],
        empty="no providers hold it",
    )
    for title, key in (("refused to bid", "refusals"), ("bids not chosen", "rejections")):
        reasons = manifest.get(key) or []
        if reasons:
            click.echo()
            click.echo(f"{title} (latest round):")
            print_table(
                ["NODE", "PROVIDER", "REASON"],
                [
                    [r.get("node", "*"), r.get("provider", "?"), r.get("reason", "")]
                    for r in reasons
                ],
            )
    history = _collapsed(manifest.get("history") or [])
    if history:
        click.echo()
        click.echo("history:")
        for entry in history:
            click.echo(f"  {_clock(entry['time'])}  {entry['state']:<12}  {entry['text']}")


@deployments.command("logs")
@_id_argument
@click.option(
    "--allocation",
    "name",
    metavar="NAME",
    help="Only this allocation's output (NAME, or SLOT/NAME for one copy).",
)
@json_option
@gateway_options
@pass_app
def deployments_logs(
    app: App, id: str, name: str | None, as_json: bool, api: str | None, key_name: str
) -> None:
    """The output of deployment ID's allocations, oldest line first, each line prefixed with
    its node/allocation and stream. Asked of the providers while they run it; kept by the node
    once it is over.

    \b
    Examples:
      dmsnode deployments logs d3f9c2a1b0e4d5c67
      dmsnode deployments logs d3f9c2a1b0e4d5c67 --allocation web
      dmsnode deployments logs d3f9c2a1b0e4d5c67 --json
    """
    result = _Session(app, api, key_name).call("logs", {"id": id})
    logs: dict[str, list[dict[str, Any]]] = result.get("logs") or {}
    if name is not None:
        chosen = {key: lines for key, lines in logs.items() if name in (key, key.split("/", 1)[-1])}
        if not chosen and logs:
            raise click.ClickException(
                f"deployment {id} has no allocation {name!r}; it has output from "
                f"{', '.join(sorted(logs))}: pass one of those (or its part after the '/')"
            )
        logs = chosen
    if as_json:
        print_json(result | {"logs": logs})
        return
    lines = sorted(
        (
            (float(line.get("time") or 0.0), key, line)
            for key, many in logs.items()
            for line in many
        ),
        key=lambda item: item[0],
    )
    if not lines:
        click.echo(f"no output from deployment {id} yet ({result['state']})", err=True)
        return
    width = max(len(key) for _, key, _ in lines)
    for _, key, line in lines:
        stream = str(line.get("stream") or "?")
        for text in str(line.get("text", "")).splitlines() or [""]:
            click.echo(f"{key:<{width}}  {stream:<6}  {text}")


@deployments.command("shutdown")
@_id_argument
@click.option("--wait", is_flag=True, help="Wait until everything is stopped and released.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="With --wait: stop waiting after SECONDS (exit 2; the shutdown goes on).",
)
@json_option
@gateway_options
@pass_app
def deployments_shutdown(
    app: App,
    id: str,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    api: str | None,
    key_name: str,
) -> None:
    """Stop deployment ID: its allocations are stopped and every provider lets go (their
    output is kept). It ends Completed.

    \b
    Examples:
      dmsnode deployments shutdown d3f9c2a1b0e4d5c67
      dmsnode deployments shutdown d3f9c2a1b0e4d5c67 --wait --timeout 60
    """
    if timeout is not None and not wait:
        raise click.UsageError("--timeout limits how long --wait waits: add --wait")
    session = _Session(app, api, key_name)
    progress = _Progress(echo=not as_json)
    if wait:  # what happened before the shutdown is not news
        progress.update(session.call("status", {"id": id}), quiet=True)
    summary = session.call("shutdown", {"id": id})
    if not wait:
        if as_json:
            print_json(summary)
        elif summary["state"] in TERMINAL:
            click.echo(f"deployment {id} is already over ({summary['state']})")
        else:
            click.echo(f"deployment {id} is shutting down")
            click.echo(f"  see when it is over: dmsnode deployments status {id}")
        return
    status = _follow(session, id, TERMINAL, timeout, progress)
    if as_json:
        print_json(status)
        return
    reason = f": {status['reason']}" if status.get("reason") else ""
    click.echo(f"deployment {id} is over ({status['state']}{reason})")


@deployments.command("prune")
@json_option
@gateway_options
@pass_app
def deployments_prune(app: App, as_json: bool, api: str | None, key_name: str) -> None:
    """Delete every Completed or Failed deployment, with the output kept of it.

    \b
    Examples:
      dmsnode deployments prune
    """
    result = _Session(app, api, key_name).call("prune", {})
    if as_json:
        print_json(result)
    elif result["pruned"]:
        pruned = result["pruned"]
        click.echo(f"deleted {_count(len(pruned), 'deployment')}: {', '.join(pruned)}")
    else:
        click.echo("nothing to prune: no deployment is Completed or Failed")


@deployments.command("delete")
@_id_argument
@json_option
@gateway_options
@pass_app
def deployments_delete(app: App, id: str, as_json: bool, api: str | None, key_name: str) -> None:
    """Delete deployment ID (Completed or Failed only), with the output kept of it.

    \b
    Examples:
      dmsnode deployments delete d3f9c2a1b0e4d5c67
    """
    result = _Session(app, api, key_name).call(
        "delete", {"id": id}, hint=f"dmsnode deployments shutdown {id} --wait"
    )
    if as_json:
        print_json(result)
    else:
        click.echo(f"deleted deployment {result['deleted']}")


# --- formatting --------------------------------------------------------------------------------


def _field(name: str, value: str) -> None:
    click.echo(f"{name + ':':<12}{value}")


def _duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    seconds = max(0.0, seconds)
    if seconds < 100:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _clock(timestamp: float) -> str:
    """A Unix time as local time, to the second."""
    moment = datetime.datetime.fromtimestamp(timestamp)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _short(did: str) -> str:
    return f"{did[:16]}…{did[-6:]}" if len(did) > 28 else did


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
