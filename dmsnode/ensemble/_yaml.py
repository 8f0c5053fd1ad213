"""Reading YAML that may be hostile: plain data (mappings, lists, text, numbers, booleans, null)
and the line of every value, or a clean refusal.

PyYAML's ``SafeLoader`` only composes the node graph here; the graph is then walked by hand,
which is where the limits are enforced: the size of the text, the number of values once aliases
are expanded (an alias bomb is a few hundred bytes that expand to billions of values), the depth,
recursive aliases, and tags (only YAML's plain types are read; ``!!python/...``, ``!!binary``,
``!!set`` and custom tags are refused). Duplicate keys, which PyYAML silently overrides, are
errors. Merge keys (``<<: *defaults``) are supported; explicit keys win over merged ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, final

import yaml

from ._errors import Path

__all__ = [
    "MAX_DEPTH",
    "MAX_TEXT_BYTES",
    "MAX_VALUES",
    "Document",
    "LoadProblem",
    "load_yaml",
]

#: Ensemble files are a few kilobytes; a megabyte is far beyond any real one.
MAX_TEXT_BYTES: Final = 1024 * 1024
#: Values in the document once every alias is expanded.
MAX_VALUES: Final = 100_000
#: Nesting of mappings and lists (an ensemble needs about eight).
MAX_DEPTH: Final = 64

_TAG: Final = "tag:yaml.org,2002:"
_SCALAR_TAGS: Final = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null"))
#: Unquoted dates (``2024-01-01``) are read as the text written, not as date objects.
_TIMESTAMP: Final = _TAG + "timestamp"
_MAP: Final = _TAG + "map"
_SEQ: Final = _TAG + "seq"
_MERGE: Final = _TAG + "merge"


@final
class LoadProblem(Exception):
    """The text cannot be read as one safe YAML document; the line where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@final
@dataclass(frozen=True, slots=True)
class Document:
    """The data read, the line (1-based) of each path, and the problems found in places
    (bad keys, refused tags) that did not stop the reading; those paths hold ``None``."""

    data: Any
    lines: dict[Path, int]
    problems: list[tuple[Path, str]]


def load_yaml(text: str | bytes) -> Document:
    """Read one YAML document; :class:`LoadProblem` if it cannot be read at all."""
    if isinstance(text, bytes):
        if len(text) > MAX_TEXT_BYTES:
            raise LoadProblem(_too_big(len(text)))
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadProblem(f"the file is not UTF-8 text (byte {exc.start})") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise LoadProblem(_too_big(len(text.encode("utf-8", "surrogatepass"))))
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
        raise LoadProblem(f"not valid YAML: {exc.reason} (U+{code:04X})", line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise LoadProblem(f"not valid YAML: {reason}", mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise LoadProblem(f"not valid YAML: {exc}") from None
    if node is None:
        raise LoadProblem("the file is empty: an ensemble needs at least allocations and nodes")
    return _Walker().document(node)


def _too_big(size: int) -> str:
    return f"the file is too large ({size} bytes; an ensemble file may hold {MAX_TEXT_BYTES})"


@final
class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no type hints
    """The safe loader, refusing deep nesting as it composes (its composer is recursive)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise LoadProblem(f"nested more than {MAX_DEPTH} levels deep", line)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@final
class _Walker:
    """Turns a composed node graph into plain data, enforcing the limits."""

    def __init__(self) -> None:
        self._count = 0
        self._stack: set[int] = set()
        self._lines: dict[Path, int] = {}
        self._problems: list[tuple[Path, str]] = []
        # Constructs scalars only: ints, floats, booleans and nulls as YAML 1.1 reads them.
        self._constructor = yaml.SafeLoader("")

    def document(self, node: yaml.Node) -> Document:
        self._lines[()] = node.start_mark.line + 1
        data = self._value(node, ())
        return Document(data, self._lines, self._problems)

    def _value(self, node: yaml.Node, path: Path) -> Any:
        self._count += 1
        if self._count > MAX_VALUES:
            raise LoadProblem(
                f"the document expands to more than {MAX_VALUES} values (too many aliases?)",
                node.start_mark.line + 1,
            )
        if len(path) > MAX_DEPTH:
            raise LoadProblem(f"nested more than {MAX_DEPTH} levels deep", node.start_mark.line + 1)
        if id(node) in self._stack:
            raise LoadProblem(
                "an alias refers to a value that contains it", node.start_mark.line + 1
            )
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
                return [self._item(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self._stack.discard(id(node))
        self._problems.append((path, _refused_tag(node.tag)))
        return None

    def _item(self, node: yaml.Node, path: Path) -> Any:
        self._lines[path] = node.start_mark.line + 1
        return self._value(node, path)

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            self._problems.append((path, _refused_tag(node.tag)))
            return None
        try:
            return self._constructor.construct_object(node)
        except Exception:  # a 5000-digit integer, say: Python refuses to convert it
            self._problems.append((path, f"cannot read the value {node.value[:40]!r}"))
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        # Merged keys first, so that the explicit keys (and their lines) override them.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(value_node, result, path)
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            line = key_node.start_mark.line + 1
            key = self._key(key_node, path)
            if key is None:
                continue
            where = (*path, key)
            if key in first_line:
                self._problems.append(
                    (where, f"the key {key!r} is given twice (first on line {first_line[key]})")
                )
                continue
            first_line[key] = line
            self._lines[where] = line
            result[key] = self._value(value_node, where)
        return result

    def _merge(self, node: yaml.Node, into: dict[str, Any], path: Path) -> None:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for source in reversed(sources):  # the first mapping named wins
            merged = self._value(source, path) if isinstance(source, yaml.MappingNode) else None
            if not isinstance(merged, dict):
                self._problems.append((path, "a merge key (<<) must name a mapping"))
                return
            into.update(merged)

    def _key(self, node: yaml.Node, path: Path) -> str | None:
        self._count += 1
        if not isinstance(node, yaml.ScalarNode):
            self._lines.setdefault(path, node.start_mark.line + 1)
            self._problems.append((path, "a key must be a plain name, not a mapping or a list"))
            return None
        where = (*path, str(node.value))
        value = self._scalar(node, where)
        if isinstance(value, str):
            return value
        self._lines[where] = node.start_mark.line + 1
        if value is not None or node.tag == _TAG + "null":
            self._problems.append(
                (
                    where,
                    f"a key must be text; quote it: '{node.value}' (YAML reads it as {value!r})",
                )
            )
        return None


def _refused_tag(tag: str) -> str:
    shown = tag.replace(_TAG, "!!")
    return f"the tag {shown} is not allowed: an ensemble holds plain mappings, lists and values"
