"""The rules that span fields: names that refer to other parts of the ensemble, placement,
dependencies, ports, uniqueness.

They run on the draft that :mod:`._parse` built, placeholders included, and skip whatever
was already found wrong (an error there would only repeat it). The rules:

- every allocation is placed on exactly one node, and a node lists only allocations that exist;
- ``depends_on`` names allocations that exist, on the same node, without cycles (a cycle is
  named: ``a -> b -> a``);
- a node's ports lead to allocations of that node; a public port is asked once per node, and a
  private port of an allocation is mapped once;
- ``provision`` names scripts that exist; DNS names are unique;
- ``edge_constraints`` join nodes that exist, each pair once;
- ``exclude_peers`` lists each peer once, and no node is pinned to an excluded peer.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

from ._errors import Path, Problems
from ._spec import Ensemble

__all__ = ["check_ensemble"]


def check_ensemble(draft: Ensemble, problems: Problems) -> None:
    """Record in ``problems`` every cross-field rule ``draft`` breaks."""
    placed = _placement(draft, problems)
    _dependencies(draft, placed, problems)
    _ports(draft, problems)
    _scripts(draft, problems)
    _dns_names(draft, problems)
    _edges(draft, problems)
    _peers(draft, problems)


def _placement(draft: Ensemble, problems: Problems) -> dict[str, str]:
    """Where each allocation is placed; reports unknown, doubly placed and unplaced ones."""
    placed: dict[str, str] = {}
    for node in draft.nodes.values():
        for i, name in enumerate(node.allocations):
            path: Path = ("nodes", node.name, "allocations", i)
            if not name or problems.touched(path):
                continue
            if name not in draft.allocations:
                if not problems.has(("allocations",)):  # else every name would be unknown
                    problems.add(
                        path, f"no allocation named {name!r}{_hint(name, draft.allocations)}"
                    )
            elif name in placed:
                problems.add(
                    path,
                    f"{name!r} is already placed on node {placed[name]!r}:"
                    " an allocation runs on exactly one node",
                )
            else:
                placed[name] = node.name
    lists_complete = not problems.has(("nodes",)) and all(
        _complete(n.name, n.allocations, problems) for n in draft.nodes.values()
    )
    if lists_complete:
        for name in draft.allocations:
            if name not in placed:
                problems.add(
                    ("allocations", name),
                    "is not placed on any node: list it under a node's allocations",
                )
    return placed


def _dependencies(draft: Ensemble, placed: dict[str, str], problems: Problems) -> None:
    graph: dict[str, list[tuple[int, str]]] = {}
    for allocation in draft.allocations.values():
        edges = graph.setdefault(allocation.name, [])
        for i, dependency in enumerate(allocation.depends_on):
            path: Path = ("allocations", allocation.name, "depends_on", i)
            if not dependency or dependency == allocation.name or problems.touched(path):
                continue
            if dependency not in draft.allocations:
                problems.add(
                    path,
                    f"no allocation named {dependency!r}{_hint(dependency, draft.allocations)}",
                )
                continue
            edges.append((i, dependency))
            here, there = placed.get(allocation.name), placed.get(dependency)
            if here and there and here != there:
                problems.add(
                    path,
                    f"{dependency!r} is on node {there!r} and {allocation.name!r} on node"
                    f" {here!r}: an allocation depends only on allocations of its own node",
                )
    for cycle, path in _cycles(graph):
        problems.add(path, f"depends_on makes a cycle: {' -> '.join(cycle)}")


def _cycles(graph: dict[str, list[tuple[int, str]]]) -> list[tuple[list[str], Path]]:
    """Each cycle once (as ``a -> b -> a``), with the path of the edge that closes it."""
    found: list[tuple[list[str], Path]] = []
    seen_cycles: set[frozenset[str]] = set()
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        # Iterative depth-first search: the chain of names, and where each stands in its list.
        stack: list[tuple[str, int]] = [(start, 0)]
        on_stack = {start}
        while stack:
            name, position = stack[-1]
            edges = graph.get(name, [])
            if position == len(edges):
                stack.pop()
                on_stack.discard(name)
                done.add(name)
                continue
            stack[-1] = (name, position + 1)
            index, target = edges[position]
            if target in on_stack:
                chain = [n for n, _ in stack]
                cycle = [*chain[chain.index(target) :], target]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append((cycle, ("allocations", name, "depends_on", index)))
            elif target not in done:
                stack.append((target, 0))
                on_stack.add(target)
    return found


def _ports(draft: Ensemble, problems: Problems) -> None:
    for node in draft.nodes.values():
        public: dict[int, int] = {}
        private: dict[tuple[str, int], int] = {}
        for i, port in enumerate(node.ports):
            path: Path = ("nodes", node.name, "ports", i)
            if problems.touched(path) or not port.allocation:
                continue
            if port.allocation not in draft.allocations:
                if problems.has(("allocations",)):
                    continue
                problems.add(
                    (*path, "allocation"),
                    f"no allocation named {port.allocation!r}"
                    f"{_hint(port.allocation, draft.allocations)}",
                )
                continue
            if port.allocation not in node.allocations:
                if not _complete(node.name, node.allocations, problems):
                    continue
                problems.add(
                    (*path, "allocation"),
                    f"{port.allocation!r} is not on node {node.name!r}"
                    f" (it runs {', '.join(a for a in node.allocations if a) or 'nothing'})",
                )
                continue
            if not port.dynamic:
                if port.public in public:
                    problems.add(
                        (*path, "public"),
                        f"public port {port.public} is already asked by ports[{public[port.public]}]",
                    )
                else:
                    public[port.public] = i
            key = (port.allocation, port.private)
            if key in private:
                problems.add(
                    (*path, "private"),
                    f"port {port.private} of {port.allocation!r} is already mapped by"
                    f" ports[{private[key]}]",
                )
            else:
                private[key] = i


def _scripts(draft: Ensemble, problems: Problems) -> None:
    for allocation in draft.allocations.values():
        for i, script in enumerate(allocation.provision):
            path: Path = ("allocations", allocation.name, "provision", i)
            if script and not problems.touched(path) and script not in draft.scripts:
                where = (
                    f"{_hint(script, draft.scripts)} (scripts: {', '.join(draft.scripts)})"
                    if draft.scripts
                    else ": define it under the top-level 'scripts'"
                )
                problems.add(path, f"no script named {script!r}{where}")


def _dns_names(draft: Ensemble, problems: Problems) -> None:
    owners: dict[str, str] = {}
    for allocation in draft.allocations.values():
        path: Path = ("allocations", allocation.name, "dns_name")
        if problems.touched(path):
            continue
        owner = owners.setdefault(allocation.dns_name.lower(), allocation.name)
        if owner != allocation.name:
            problems.add(
                path,
                f"the DNS name {allocation.dns_name!r} is already allocation {owner!r}'s",
            )


def _edges(draft: Ensemble, problems: Problems) -> None:
    pairs: dict[frozenset[str], int] = {}
    for i, edge in enumerate(draft.edge_constraints):
        path: Path = ("edge_constraints", i, "edges")
        if not all(edge.edges) or problems.has(path):
            continue
        unknown = [n for n in edge.edges if n not in draft.nodes]
        if unknown and problems.has(("nodes",)):
            continue
        for name in unknown:
            problems.add(path, f"no node named {name!r}{_hint(name, draft.nodes)}")
        if unknown:
            continue
        pair = frozenset(edge.edges)
        if pair in pairs:
            problems.add(
                path,
                f"nodes {edge.edges[0]!r} and {edge.edges[1]!r} are already constrained by"
                f" edge_constraints[{pairs[pair]}]",
            )
        else:
            pairs[pair] = i


def _peers(draft: Ensemble, problems: Problems) -> None:
    excluded: dict[str, int] = {}
    for i, peer in enumerate(draft.exclude_peers):
        if not peer:
            continue
        if peer in excluded:
            problems.add(("exclude_peers", i), f"already listed at exclude_peers[{excluded[peer]}]")
        else:
            excluded[peer] = i
    for node in draft.nodes.values():
        if node.peer and node.peer in excluded:
            problems.add(
                ("nodes", node.name, "peer"),
                f"is pinned to a peer that exclude_peers[{excluded[node.peer]}] excludes",
            )


def _complete(node: str, allocations: tuple[str, ...], problems: Problems) -> bool:
    """Whether a node's list of allocations was read whole (so that what it lacks is lacking)."""
    return not (
        problems.has(("nodes", node))
        or problems.has(("nodes", node, "allocations"))
        or "" in allocations
    )


def _hint(word: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
