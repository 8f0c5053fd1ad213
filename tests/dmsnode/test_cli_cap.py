"""``dmsnode cap`` through click's runner: the worked example of the docs, and refusals."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import pytest
from click.testing import CliRunner, Result

from dmsnode.cli import cli
from dmsnode.cli._cap import parse_expiry
from nuactor import Envelope, Handle, Identity, Keystore, TrustContext
from nuactor.errors import Unauthorized

PASSPHRASE = "pw"
NAMES = ("dms", "owner", "org", "user", "laptop")


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """A user directory with a key for each of NAMES (cheap KDF settings: tests, not secrets)."""
    store = Keystore(
        tmp_path / "key", opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN
    )
    for name in NAMES:
        store.create(name, PASSPHRASE, identity=Identity.from_seed(name.encode().ljust(32, b".")))
    return tmp_path


def did(name: str) -> str:
    return Identity.from_seed(name.encode().ljust(32, b".")).did


def identity(name: str) -> Identity:
    return Identity.from_seed(name.encode().ljust(32, b"."))


def run(
    user_dir: Path, *args: str, input: str | None = None, passphrase: str = PASSPHRASE
) -> Result:
    return CliRunner().invoke(
        cli,
        ["--user-dir", str(user_dir), "cap", *args],
        env={"DMS_PASSPHRASE": passphrase},
        input=input,
    )


def ok(user_dir: Path, *args: str, input: str | None = None) -> str:
    result = run(user_dir, *args, input=input)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def refused(user_dir: Path, *args: str, code: int = 1, passphrase: str = PASSPHRASE) -> str:
    """Run a command that must fail with ``code``; return its error line."""
    result = run(user_dir, *args, passphrase=passphrase)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        return lines[0]
    return result.stderr


def load(user_dir: Path, name: str) -> TrustContext:
    return TrustContext.load(user_dir / "cap" / f"{name}.json", identity(name))


def user_call(sender: str, trust: TrustContext, to: str, beh: str) -> Envelope:
    prf, tok = trust.proofs_for(to, beh)
    return Envelope.build(
        sender=Handle(did(sender), "cli"), to=Handle(to, "root"), beh=beh, body={}, prf=prf, tok=tok
    ).sign(identity(sender))


def test_worked_example(user_dir: Path) -> None:
    """The docs' example: owner → node root anchor; organisation → user; the user's call."""
    for name in NAMES:
        assert ok(user_dir, "new", name).startswith(f"created capability context '{name}'")
    added = ok(user_dir, "anchor", "--context", "dms", "--root", did("owner"))
    assert added.startswith("added root anchor bafy")

    token = ok(user_dir, "grant", "-c", "dms", "--to", did("org"), "--cmd", "/dms/deployment")
    assert "," not in token and " " not in token
    assert ok(user_dir, "anchor", "-c", "dms", "--require", token).startswith("added require")

    member = ok(
        user_dir,
        "grant",
        "-c",
        "org",
        "--to",
        did("user"),
        "--cmd",
        "/dms/deployment",
        "--powerline",
    )
    ok(user_dir, "anchor", "-c", "user", "--provide", member)

    node, user = load(user_dir, "dms"), load(user_dir, "user")
    node.authorize(user_call("user", user, node.did, "/dms/deployment/new"))
    node.authorize(user_call("owner", load(user_dir, "owner"), node.did, "/dms/node/onboard"))

    listing = ok(user_dir, "list", "-c", "dms")
    header, *rows = listing.splitlines()
    assert header.split()[:2] == ["KIND", "CID"] and "EXPIRES" in header
    assert [row.split()[0] for row in rows] == ["root", "require"]
    assert "/dms/deployment" in rows[1] and "active" in rows[1]
    as_json = json.loads(ok(user_dir, "list", "-c", "dms", "--json"))
    assert as_json["did"] == did("dms")
    assert [(a["kind"], a["aud"], a["cmd"]) for a in as_json["anchors"]] == [
        ("root", did("owner"), "/"),
        ("require", did("org"), "/dms/deployment"),
    ]


def test_delegate_prints_a_bundle_that_anchor_takes(user_dir: Path) -> None:
    for name in ("dms", "org", "user", "laptop"):
        ok(user_dir, "new", name)
    token = ok(user_dir, "grant", "-c", "dms", "--to", did("org"), "--cmd", "/dms", "--depth", "2")
    ok(user_dir, "anchor", "-c", "dms", "--require", token)
    member = ok(user_dir, "grant", "-c", "org", "--to", did("user"), "--cmd", "/dms", "--powerline")
    ok(user_dir, "anchor", "-c", "user", "--provide", member)
    bundle = ok(
        user_dir, "delegate", "-c", "user", "--to", did("laptop"), "--cmd", "/dms/deployment"
    )
    assert bundle.count(",") == 1 and bundle.startswith(member)
    ok(user_dir, "anchor", "-c", "laptop", "--provide", "-", input=bundle + "\n")
    laptop = load(user_dir, "laptop")
    (anchor,) = laptop.anchors()
    assert anchor.kind == "provide" and len(anchor.chain) == 1
    load(user_dir, "dms").authorize(user_call("laptop", laptop, did("dms"), "/dms/deployment/new"))
    details = json.loads(
        ok(
            user_dir,
            "delegate",
            "-c",
            "user",
            "--to",
            did("laptop"),
            "--cmd",
            "/dms/node",
            "--json",
        )
    )
    assert details["bundle"].split(",")[0] == member and details["chain"] == [
        json.loads(ok(user_dir, "list", "-c", "user", "--json"))["anchors"][0]["cid"]
    ]


def test_revoke_and_remove(user_dir: Path) -> None:
    for name in ("dms", "org", "user"):
        ok(user_dir, "new", name)
    token = ok(user_dir, "grant", "-c", "dms", "--to", did("org"), "--cmd", "/dms")
    require = ok(user_dir, "anchor", "-c", "dms", "--require", token, "--json")
    cid = json.loads(require)["cid"]
    member = ok(user_dir, "grant", "-c", "org", "--to", did("user"), "--cmd", "/dms", "--powerline")
    ok(user_dir, "anchor", "-c", "user", "--provide", member)
    call = user_call("user", load(user_dir, "user"), did("dms"), "/dms/x")
    load(user_dir, "dms").authorize(call)

    assert ok(user_dir, "revoke", "-c", "dms", cid) == f"revoked {cid}"
    assert "revoked" in ok(user_dir, "list", "-c", "dms").splitlines()[1]
    with pytest.raises(Unauthorized, match=f"delegation {cid} .* has been revoked"):
        load(user_dir, "dms").authorize(call)

    other = json.loads(
        ok(user_dir, "grant", "-c", "dms", "--to", did("user"), "--cmd", "/x", "--json")
    )
    ok(user_dir, "revoke", "-c", "dms", other["cid"])
    rows = ok(user_dir, "list", "-c", "dms").splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [["require", cid], ["revoked", other["cid"]]]

    assert ok(user_dir, "remove", "-c", "dms", cid) == f"removed require anchor {cid}"
    assert json.loads(ok(user_dir, "list", "-c", "dms", "--json"))["anchors"] == []
    assert "there is no anchor" in refused(user_dir, "remove", "-c", "dms", cid)


def test_grant_options(user_dir: Path) -> None:
    ok(user_dir, "new", "dms")
    shown = json.loads(
        ok(
            user_dir,
            "grant",
            "-c",
            "dms",
            "--to",
            did("user"),
            "--cmd",
            "/dms/deployment",
            "--policy",
            '[["<=", ".cpu", 4]]',
            "--expiry",
            "2099-01-01T00:00:00Z",
            "--depth",
            "0",
            "--json",
        )
    )
    assert shown["sub"] == did("dms") and shown["aud"] == did("user")
    assert shown["pol"] == [["<=", ".cpu", 4]] and shown["meta"] == {"depth": 0}
    assert shown["expires"] == "2099-01-01T00:00:00Z"
    assert TrustContext.parse_bundle(shown["token"])[0].cid_bytes  # the text form decodes
    never = json.loads(
        ok(
            user_dir,
            "grant",
            "-c",
            "dms",
            "--to",
            did("user"),
            "--cmd",
            "/",
            "--expiry",
            "never",
            "--json",
        )
    )
    assert never["exp"] is None and never["expires"] == "never"


def test_refusals_are_one_line_and_exit_1(user_dir: Path) -> None:
    ok(user_dir, "new", "dms")
    ok(user_dir, "new", "org")
    assert "exists already" in refused(user_dir, "new", "dms")
    assert "--force" in refused(user_dir, "new", "dms")
    ok(user_dir, "new", "dms", "--force")
    assert "no capability context 'ghost'" in refused(user_dir, "list", "-c", "ghost")
    assert "invalid key name" in refused(user_dir, "new", "../x")
    assert "wrong passphrase" in refused(user_dir, "list", "-c", "dms", passphrase="nope")

    foreign = ok(user_dir, "grant", "-c", "org", "--to", did("user"), "--cmd", "/dms")
    assert "not by this node" in refused(user_dir, "anchor", "-c", "dms", "--require", foreign)
    assert "not to this context" in refused(user_dir, "anchor", "-c", "dms", "--provide", foreign)
    assert "not base64" in refused(user_dir, "anchor", "-c", "dms", "--provide", "###")
    assert "no provide anchor" in refused(
        user_dir, "delegate", "-c", "dms", "--to", did("user"), "--cmd", "/dms"
    )
    assert "not the CID" in refused(user_dir, "revoke", "-c", "dms", "bafy-not")

    (user_dir / "cap" / "org.json").write_text("{broken")
    line = refused(user_dir, "list", "-c", "org")
    assert "org.json is not valid: not JSON" in line
    assert json.loads((user_dir / "cap" / "dms.json").read_text())["root"] == []


def test_bad_usage_exits_2(user_dir: Path) -> None:
    ok(user_dir, "new", "dms")
    grant = ("grant", "-c", "dms", "--to", did("user"), "--cmd")
    assert "must be lowercase" in refused(user_dir, *grant, "/DMS", code=2)
    assert "--expiry" in refused(user_dir, *grant, "/dms", "--expiry", "soon", code=2)
    assert "in the past" in refused(user_dir, *grant, "/dms", "--expiry", "2001-01-01", code=2)
    assert "not JSON" in refused(user_dir, *grant, "/dms", "--policy", "[", code=2)
    assert "--policy" in refused(user_dir, *grant, "/dms", "--policy", '[["??"]]', code=2)
    assert "--depth" in refused(user_dir, *grant, "/dms", "--depth", "-1", code=2)
    assert "--to" in refused(user_dir, "grant", "-c", "dms", "--to", "bob", "--cmd", "/", code=2)
    assert "exactly one" in refused(user_dir, "anchor", "-c", "dms", code=2)
    both = ("anchor", "-c", "dms", "--root", did("user"), "--require", "x")
    assert "exactly one" in refused(user_dir, *both, code=2)
    assert refused(user_dir, "revoke", "-c", "dms", code=2)


@pytest.mark.parametrize(
    "command", ["new", "anchor", "grant", "delegate", "list", "revoke", "remove"]
)
def test_help_has_examples(command: str, tmp_path: Path) -> None:
    result = run(tmp_path, command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and "dmsnode cap" in result.output


def test_parse_expiry() -> None:
    now = 1_800_000_000
    assert parse_expiry("never", now=now) is None
    assert parse_expiry("30d", now=now) == now + 30 * 86_400
    assert parse_expiry("1d12h", now=now) == now + 36 * 3_600
    assert parse_expiry("1w", now=now) == now + 604_800
    assert parse_expiry("90s", now=now) == now + 90
    moment = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert parse_expiry("2030-01-02T03:04:05Z", now=now) == int(moment.timestamp())
    assert parse_expiry("2030-01-02T05:04:05+02:00", now=now) == int(moment.timestamp())
    assert parse_expiry("2030-01-02", now=now) == int(
        datetime.datetime(2030, 1, 2, tzinfo=datetime.UTC).timestamp()
    )
    for bad, message in [
        ("0d", "not a positive duration"),
        ("2001-01-01T00:00:00Z", "in the past"),
        ("2030-01-02T03:04:05", "no time zone"),
        ("tomorrow", "neither"),
        ("5x", "neither"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_expiry(bad, now=now)
