"""Reading an ensemble file whole: YAML text (or already-loaded data) to an :class:`Ensemble`,
every problem reported at once; and writing one back."""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import EnsembleInvalid
from ._errors import Problems, SpecError
from ._parse import read_ensemble
from ._spec import Ensemble
from ._validate import check_ensemble
from ._yaml import LoadProblem, load_yaml

__all__ = ["dump", "parse", "parse_data", "validate", "validate_data"]


def parse(text: str | bytes) -> Ensemble:
    """The ensemble in ``text`` (NuNet v1 YAML); :class:`~dmsnode.errors.EnsembleInvalid`
    listing every problem if it has any."""
    ensemble, errors = _read(text)
    if ensemble is None:
        raise EnsembleInvalid(errors)
    return ensemble


def validate(text: str | bytes) -> list[SpecError]:
    """Every problem of the ensemble in ``text``, in the order of the file (empty: valid)."""
    return _read(text)[1]


def parse_data(data: Any) -> Ensemble:
    """The ensemble in plain data already loaded (from JSON, the store, an API request): the
    same checks as :func:`parse`, without line numbers."""
    ensemble, errors = _check(data, Problems())
    if ensemble is None:
        raise EnsembleInvalid(errors)
    return ensemble


def validate_data(data: Any) -> list[SpecError]:
    """Every problem of the ensemble in plain data (empty: valid)."""
    return _check(data, Problems())[1]


def dump(ensemble: Ensemble) -> str:
    """The ensemble as YAML in its file format; ``parse(dump(e)) == e``."""
    data = ensemble.to_dict()
    text: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    if yaml.safe_load(text) != data:
        # PyYAML writes some line breaks (U+0085, U+2028, U+2029) raw, and reads them back as
        # breaks; escaping everything outside ASCII keeps such text as it was.
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return text


def _read(text: str | bytes) -> tuple[Ensemble | None, list[SpecError]]:
    try:
        document = load_yaml(text)
    except LoadProblem as problem:
        return None, [SpecError("(root)", problem.message, problem.line)]
    problems = Problems(document.lines)
    for path, message in document.problems:
        problems.add(path, message)
    return _check(document.data, problems)


def _check(data: Any, problems: Problems) -> tuple[Ensemble | None, list[SpecError]]:
    draft = read_ensemble(data, problems)
    if draft is not None:
        check_ensemble(draft, problems)
    if problems or draft is None:
        return None, problems.errors()
    return draft, []
