"""The ledger of the node's resources (DESIGN §3.3): the onboarded share, commitments (resources
promised to a bid, until their TTL) and allocations (resources a running job holds), with
free = onboarded - allocated - committed.

Atomicity: every operation reads the ledger and changes it inside one ``store.write`` transaction
(``BEGIN IMMEDIATE``, which also serialises writers in other processes), and there is no cache, so
no interleaving of concurrent requests can overbook anything. Cores are counted in thousandths
(integers), so sums never drift with float noise; GPUs and ports are also made unique by the
tables' primary keys. Expired commitments are deleted at the start of every write and skipped by
every read, so they are never counted.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, final

from ..errors import (
    BadRequest,
    CommitmentExpired,
    DuplicateAllocation,
    NotEnoughResources,
    NotOnboarded,
    OffboardRefused,
    OnboardingRefused,
    StoreError,
    UnknownAllocation,
)
from ..store import Store
from ._model import Gpu, Resources
from ._onboarding import below_in_use, check_onboarding
from ._ports import PortRequest, check_port_range, reserve_ports
from ._units import format_bytes, format_cores, format_hz

__all__ = ["Allocation", "Also", "Clock", "Commitment", "Ledger", "LedgerState", "shortfall"]

#: More SQL run in the same transaction as a ledger change (a caller's own records of it), so
#: that both are committed or neither is.
Also = Callable[[sqlite3.Connection], None]

#: Unix time in seconds. A commitment's expiry is absolute so that it survives a restart; a
#: monotonic clock (Trio's) restarts with the process, so the ledger uses wall-clock time.
Clock = Callable[[], float]

_MILLI: Final = 1000
_MAX_ID_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class _Holding:
    """What a commitment and an allocation both hold: resources and ports, for one id."""

    alloc_id: str
    resources: Resources
    static_ports: tuple[int, ...]
    dynamic_ports: tuple[int, ...]

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port it holds, in order."""
        return tuple(sorted((*self.static_ports, *self.dynamic_ports)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "alloc_id": self.alloc_id,
            "resources": self.resources.to_dict(),
            "ports": {"static": list(self.static_ports), "dynamic": list(self.dynamic_ports)},
        }


@final
@dataclass(frozen=True, slots=True)
class Commitment(_Holding):
    """Resources and ports promised to ``alloc_id`` until ``expires_at`` (Unix time)."""

    expires_at: float

    def to_dict(self) -> dict[str, Any]:
        return _Holding.to_dict(self) | {"expires_at": self.expires_at}


@final
@dataclass(frozen=True, slots=True)
class Allocation(_Holding):
    """Resources and ports that ``alloc_id`` holds since ``allocated_at`` (Unix time), until it
    is released."""

    allocated_at: float

    def to_dict(self) -> dict[str, Any]:
        return _Holding.to_dict(self) | {"allocated_at": self.allocated_at}


@final
@dataclass(frozen=True, slots=True)
class LedgerState:
    """One consistent view of the ledger: the onboarded share (``None``: not onboarded) and the
    live commitments and allocations, each sorted by id."""

    onboarded: Resources | None
    commitments: tuple[Commitment, ...]
    allocations: tuple[Allocation, ...]

    @property
    def committed(self) -> Resources:
        return _total(c.resources for c in self.commitments)

    @property
    def allocated(self) -> Resources:
        return _total(a.resources for a in self.allocations)

    @property
    def records(self) -> tuple[Commitment | Allocation, ...]:
        """The commitments, then the allocations."""
        return (*self.commitments, *self.allocations)

    @property
    def in_use(self) -> Resources:
        """Allocated and committed together."""
        return _total(r.resources for r in self.records)

    @property
    def free(self) -> Resources:
        """Onboarded - allocated - committed (nothing when not onboarded)."""
        if self.onboarded is None:
            return Resources()
        used = self.in_use
        return Resources(
            cpu_cores=(_milli(self.onboarded.cpu_cores) - _milli(used.cpu_cores)) / _MILLI,
            cpu_hz=self.onboarded.cpu_hz,
            ram=self.onboarded.ram - used.ram,
            disk=self.onboarded.disk - used.disk,
            gpus=tuple(g for g in self.onboarded.gpus if g.key not in used.gpu_keys),
        )

    @property
    def booked_ports(self) -> frozenset[int]:
        return frozenset(p for r in self.records for p in r.ports)

    def find(self, alloc_id: str) -> Commitment | Allocation | None:
        for record in self.records:
            if record.alloc_id == alloc_id:
                return record
        return None


@final
class Ledger:
    """The node's resource ledger over a :class:`~dmsnode.store.Store`. Make one with
    :meth:`open`. Each method is one transaction, committed before it returns."""

    def __init__(self, store: Store, port_range: tuple[int, int], clock: Clock) -> None:
        """Private: use :meth:`open`."""
        self._store = store
        self._port_range = port_range
        self._clock = clock

    @classmethod
    async def open(
        cls,
        store: Store,
        *,
        port_range: tuple[int, int] = (16384, 32768),
        clock: Clock = time.time,
    ) -> Ledger:
        """The ledger kept in ``store``. ``port_range`` is ``job.port_range``; ``clock`` gives
        Unix time in seconds and is called from worker threads (tests pass a fake one)."""
        checked = check_port_range(port_range)
        if not await store.read(_has_tables):
            raise StoreError(f"{store.path}: the store has no ledger tables (schema version 2)")
        return cls(store, checked, clock)

    @property
    def port_range(self) -> tuple[int, int]:
        return self._port_range

    # Reading: a consistent snapshot, without the expired commitments.

    async def state(self) -> LedgerState:
        """Everything at once, consistently."""
        return await self._store.read(lambda conn: _load(conn, self._clock()))

    async def onboarded(self) -> Resources | None:
        """The onboarded share, or ``None`` when the node is not onboarded."""
        return (await self.state()).onboarded

    async def free(self) -> Resources:
        return (await self.state()).free

    async def committed(self) -> Resources:
        return (await self.state()).committed

    async def allocated(self) -> Resources:
        return (await self.state()).allocated

    async def commitments(self) -> tuple[Commitment, ...]:
        return (await self.state()).commitments

    async def allocations(self) -> tuple[Allocation, ...]:
        return (await self.state()).allocations

    # Changing: each a check and an update in one transaction.

    async def onboard(
        self, resources: Resources, *, machine: Resources | None = None, disk_free: int = 0
    ) -> Resources:
        """Onboard (or change the onboarded share to) ``resources`` and return it as recorded
        (cores rounded down to thousandths). Given ``machine`` (and the work directory's
        ``disk_free``), NuNet's limits are checked (:func:`check_onboarding`); in any case, a
        share below what is allocated or committed is refused with :class:`OnboardingRefused`."""

        def onboard(conn: sqlite3.Connection) -> Resources:
            now = self._clock()
            _purge(conn, now)
            in_use = _load(conn, now).in_use
            share = Resources(
                cpu_cores=_milli_down(resources.cpu_cores) / _MILLI,
                cpu_hz=resources.cpu_hz,
                ram=resources.ram,
                disk=resources.disk,
                gpus=resources.gpus,
            )
            if machine is not None:
                check_onboarding(share, machine, disk_free=disk_free, allocated=in_use)
            else:
                problems = below_in_use(share, in_use)
                if problems:
                    raise OnboardingRefused("; ".join(problems))
            conn.execute(
                "INSERT INTO onboarding (id, cpu_millicores, cpu_hz, ram, disk, gpus, onboarded_at)"
                " VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " cpu_millicores = excluded.cpu_millicores, cpu_hz = excluded.cpu_hz,"
                " ram = excluded.ram, disk = excluded.disk, gpus = excluded.gpus,"
                " onboarded_at = excluded.onboarded_at",
                (
                    _milli(share.cpu_cores),
                    share.cpu_hz,
                    share.ram,
                    share.disk,
                    json.dumps([g.to_dict() for g in share.gpus]),
                    now,
                ),
            )
            return share

        return await self._store.write(onboard)

    async def offboard(self, *, force: bool = False) -> tuple[Allocation, ...]:
        """Stop offering resources. Refused with :class:`OffboardRefused` while allocations
        exist, unless ``force``: then they are removed from the ledger too and returned, and
        the caller stops them. Commitments are dropped either way."""

        def offboard(conn: sqlite3.Connection) -> tuple[Allocation, ...]:
            now = self._clock()
            _purge(conn, now)
            state = _load(conn, now)
            if state.onboarded is None:
                raise NotOnboarded("this node is not onboarded")
            if state.allocations and not force:
                ids = ", ".join(a.alloc_id for a in state.allocations)
                n = len(state.allocations)
                raise OffboardRefused(
                    f"{_count(n, 'allocation')} running ({ids});"
                    f" stop {'it' if n == 1 else 'them'} first, or offboard with force"
                )
            conn.execute("DELETE FROM allocations")
            conn.execute("DELETE FROM onboarding")
            return state.allocations

        return await self._store.write(offboard)

    async def commit(
        self,
        alloc_id: str,
        resources: Resources,
        ports: PortRequest,
        ttl: float,
        *,
        also: Also | None = None,
    ) -> Commitment:
        """Promise ``resources`` and ``ports`` to ``alloc_id`` for ``ttl`` seconds. Refused
        with :class:`NotEnoughResources` or :class:`PortUnavailable` naming what was short,
        :class:`DuplicateAllocation`, or :class:`NotOnboarded`. Cores are rounded up to
        thousandths; GPUs are matched by ``vendor:index`` and recorded as onboarded."""
        _check_id(alloc_id)
        if not (math.isfinite(ttl) and ttl > 0):
            raise BadRequest(f"ttl must be a positive number of seconds, got {ttl!r}")

        def commit(conn: sqlite3.Connection) -> Commitment:
            now = self._clock()
            _purge(conn, now)
            state = _load(conn, now)
            if state.onboarded is None:
                raise NotOnboarded("this node is not onboarded: nothing can be committed")
            if state.find(alloc_id) is not None:
                raise DuplicateAllocation(f"{alloc_id!r} is already committed or allocated")
            wanted = _fit(resources, state.onboarded, state.free)
            static, dynamic = reserve_ports(ports, self._port_range, state.booked_ports)
            commitment = Commitment(alloc_id, wanted, static, dynamic, now + ttl)
            _insert(conn, commitment, now)
            if also is not None:
                also(conn)
            return commitment

        return await self._store.write(commit)

    async def uncommit(self, alloc_id: str) -> Commitment:
        """Withdraw the commitment ``alloc_id`` and return what it held."""

        def uncommit(conn: sqlite3.Connection) -> Commitment:
            now = self._clock()
            _purge(conn, now)
            record = _load(conn, now).find(alloc_id)
            if not isinstance(record, Commitment):
                hint = "it is an allocation: release it" if record else "it may have expired"
                raise UnknownAllocation(f"no commitment {alloc_id!r} ({hint})")
            _delete(conn, alloc_id)
            return record

        return await self._store.write(uncommit)

    async def allocate(self, alloc_id: str, *, also: Also | None = None) -> Allocation:
        """Turn the live commitment ``alloc_id`` into an allocation, keeping its resources and
        ports. Refused with :class:`CommitmentExpired` once its TTL has passed."""

        def allocate(conn: sqlite3.Connection) -> Allocation:
            now = self._clock()
            row = conn.execute(
                "SELECT state, expires_at FROM allocations WHERE alloc_id = ?", (alloc_id,)
            ).fetchone()
            if row is not None and row["state"] == "committed" and row["expires_at"] <= now:
                raise CommitmentExpired(
                    f"the commitment {alloc_id!r} expired {now - row['expires_at']:.1f} s ago;"
                    " its resources are free again"
                )
            _purge(conn, now)
            record = _load(conn, now).find(alloc_id)
            if record is None:
                raise UnknownAllocation(f"no commitment {alloc_id!r} (it may have expired)")
            if isinstance(record, Allocation):
                raise DuplicateAllocation(f"{alloc_id!r} is already allocated")
            conn.execute(
                "UPDATE allocations SET state = 'allocated', expires_at = NULL, allocated_at = ?"
                " WHERE alloc_id = ?",
                (now, alloc_id),
            )
            if also is not None:
                also(conn)
            return Allocation(
                alloc_id, record.resources, record.static_ports, record.dynamic_ports, now
            )

        return await self._store.write(allocate)

    async def release(
        self, alloc_id: str, *, also: Also | None = None
    ) -> Commitment | Allocation | None:
        """Free everything ``alloc_id`` holds (a commitment or an allocation); return it.
        Refused with :class:`UnknownAllocation` if there is nothing, unless ``also`` is given:
        then ``None`` is returned (and ``also`` still runs)."""

        def release(conn: sqlite3.Connection) -> Commitment | Allocation | None:
            now = self._clock()
            _purge(conn, now)
            record = _load(conn, now).find(alloc_id)
            if also is not None:
                also(conn)
            if record is None:
                if also is not None:
                    return None
                raise UnknownAllocation(
                    f"no commitment or allocation {alloc_id!r} (a commitment may have expired)"
                )
            _delete(conn, alloc_id)
            return record

        return await self._store.write(release)

    async def expire(self) -> tuple[str, ...]:
        """Delete the commitments whose TTL has passed and return their ids. Optional: every
        operation ignores them anyway; a node may call this now and then to log them."""
        return await self._store.write(lambda conn: _purge(conn, self._clock()))


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        " AND name IN ('onboarding', 'allocations', 'allocation_gpus', 'allocation_ports')"
    ).fetchone()
    return bool(row[0] == 4)


def _purge(conn: sqlite3.Connection, now: float) -> tuple[str, ...]:
    """Delete the expired commitments (their GPUs and ports go with them: ON DELETE CASCADE)."""
    rows = conn.execute(
        "DELETE FROM allocations WHERE state = 'committed' AND expires_at <= ? RETURNING alloc_id",
        (now,),
    ).fetchall()
    return tuple(sorted(str(r[0]) for r in rows))


def _load(conn: sqlite3.Connection, now: float) -> LedgerState:
    """The ledger as the transaction sees it, without commitments expired at ``now``."""
    row = conn.execute(
        "SELECT cpu_millicores, cpu_hz, ram, disk, gpus FROM onboarding WHERE id = 1"
    ).fetchone()
    onboarded = None
    if row is not None:
        onboarded = Resources(
            cpu_cores=row["cpu_millicores"] / _MILLI,
            cpu_hz=row["cpu_hz"],
            ram=row["ram"],
            disk=row["disk"],
            gpus=tuple(Gpu.from_dict(g) for g in json.loads(row["gpus"])),
        )
    gpus: dict[str, list[Gpu]] = {}
    for g in conn.execute("SELECT alloc_id, device FROM allocation_gpus ORDER BY gpu"):
        gpus.setdefault(g["alloc_id"], []).append(Gpu.from_dict(json.loads(g["device"])))
    ports: dict[str, tuple[list[int], list[int]]] = {}
    for p in conn.execute("SELECT alloc_id, port, dynamic FROM allocation_ports ORDER BY port"):
        ports.setdefault(p["alloc_id"], ([], []))[1 if p["dynamic"] else 0].append(p["port"])
    commitments: list[Commitment] = []
    allocations: list[Allocation] = []
    for a in conn.execute(
        "SELECT * FROM allocations WHERE state = 'allocated' OR expires_at > ? ORDER BY alloc_id",
        (now,),
    ):
        alloc_id: str = a["alloc_id"]
        amount = Resources(
            cpu_cores=a["cpu_millicores"] / _MILLI,
            cpu_hz=a["cpu_hz"],
            ram=a["ram"],
            disk=a["disk"],
            gpus=tuple(gpus.get(alloc_id, ())),
        )
        static, dynamic = ports.get(alloc_id, ([], []))
        if a["state"] == "committed":
            commitments.append(
                Commitment(alloc_id, amount, tuple(static), tuple(dynamic), a["expires_at"])
            )
        else:
            allocations.append(
                Allocation(alloc_id, amount, tuple(static), tuple(dynamic), a["allocated_at"])
            )
    return LedgerState(onboarded, tuple(commitments), tuple(allocations))


def shortfall(request: Resources, onboarded: Resources, free: Resources) -> str | None:
    """Why ``request`` would not fit in ``free`` (everything that is short), or ``None``: the
    same judgement :meth:`Ledger.commit` makes, for a node deciding whether to bid."""
    try:
        _fit(request, onboarded, free)
    except NotEnoughResources as exc:
        return str(exc)
    return None


def _fit(request: Resources, onboarded: Resources, free: Resources) -> Resources:
    """``request`` as the ledger records it (cores in thousandths, GPUs as onboarded), refused
    with :class:`NotEnoughResources` naming everything that is short."""
    asked = _milli_up(request.cpu_cores)
    problems: list[str] = []
    if asked > _milli(free.cpu_cores):
        problems.append(
            f"not enough CPU: asked {format_cores(asked / _MILLI)},"
            f" {format_cores(free.cpu_cores)} free"
        )
    if onboarded.cpu_hz and request.cpu_hz > onboarded.cpu_hz:
        problems.append(
            f"CPU clock: asked {format_hz(request.cpu_hz)}, this node's cores run at"
            f" {format_hz(onboarded.cpu_hz)}"
        )
    for what, want, have in (("RAM", request.ram, free.ram), ("disk", request.disk, free.disk)):
        if want > have:
            want_text, have_text = _bytes_pair(want, have)
            problems.append(f"not enough {what}: asked {want_text}, {have_text} free")
    devices = {g.key: g for g in onboarded.gpus}
    for key in sorted(request.gpu_keys):
        if key not in devices:
            problems.append(f"GPU {key} is not onboarded on this node")
        elif key not in free.gpu_keys:
            problems.append(f"GPU {key} is not free")
    if problems:
        raise NotEnoughResources("; ".join(problems))
    return Resources(
        cpu_cores=asked / _MILLI,
        cpu_hz=request.cpu_hz,
        ram=request.ram,
        disk=request.disk,
        gpus=tuple(devices[k] for k in sorted(request.gpu_keys)),
    )


def _insert(conn: sqlite3.Connection, commitment: Commitment, now: float) -> None:
    amount = commitment.resources
    conn.execute(
        "INSERT INTO allocations (alloc_id, state, cpu_millicores, cpu_hz, ram, disk,"
        " created_at, expires_at, allocated_at) VALUES (?, 'committed', ?, ?, ?, ?, ?, ?, NULL)",
        (
            commitment.alloc_id,
            _milli(amount.cpu_cores),
            amount.cpu_hz,
            amount.ram,
            amount.disk,
            now,
            commitment.expires_at,
        ),
    )
    conn.executemany(
        "INSERT INTO allocation_gpus (gpu, alloc_id, device) VALUES (?, ?, ?)",
        [(g.key, commitment.alloc_id, json.dumps(g.to_dict())) for g in amount.gpus],
    )
    conn.executemany(
        "INSERT INTO allocation_ports (port, alloc_id, dynamic) VALUES (?, ?, ?)",
        [(p, commitment.alloc_id, 0) for p in commitment.static_ports]
        + [(p, commitment.alloc_id, 1) for p in commitment.dynamic_ports],
    )


def _delete(conn: sqlite3.Connection, alloc_id: str) -> None:
    conn.execute("DELETE FROM allocations WHERE alloc_id = ?", (alloc_id,))


def _check_id(alloc_id: str) -> None:
    if not isinstance(alloc_id, str) or not alloc_id or len(alloc_id) > _MAX_ID_LENGTH:
        raise BadRequest(f"an allocation id must be 1 to {_MAX_ID_LENGTH} characters")


def _total(amounts: Iterable[Resources]) -> Resources:
    """The sum of amounts the ledger recorded, counting cores in thousandths (exact)."""
    milli = hz = ram = disk = 0
    gpus: list[Gpu] = []
    for amount in amounts:
        milli += _milli(amount.cpu_cores)
        hz = max(hz, amount.cpu_hz)
        ram += amount.ram
        disk += amount.disk
        gpus.extend(amount.gpus)
    return Resources(
        cpu_cores=milli / _MILLI,
        cpu_hz=hz,
        ram=ram,
        disk=disk,
        gpus=tuple(sorted(gpus, key=lambda g: g.key)),
    )


def _milli(cores: float) -> int:
    """Thousandths of a core, of an amount already counted in thousandths."""
    return round(cores * _MILLI)


def _milli_up(cores: float) -> int:
    """Thousandths of a core, rounded up (a request); float noise below 1e-6 is ignored."""
    return math.ceil(round(cores * _MILLI, 6))


def _milli_down(cores: float) -> int:
    """Thousandths of a core, rounded down (a share to offer)."""
    return math.floor(round(cores * _MILLI, 6))


def _bytes_pair(a: int, b: int) -> tuple[str, str]:
    """``a`` and ``b`` in human units, or in bytes when rounding would make them look equal."""
    a_text, b_text = format_bytes(a), format_bytes(b)
    return (a_text, b_text) if a_text != b_text or a == b else (f"{a} B", f"{b} B")


def _count(n: int, noun: str) -> str:
    return f"1 {noun} is" if n == 1 else f"{n} {noun}s are"
