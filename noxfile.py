"""Developer sessions: ``nox -s tests lint typecheck bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (the README's test command)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over both packages and the benchmarks."""
    session.install("-e", ".[test,dev,bench]")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark, each printing JSON lines."""
    session.install("-e", ".[bench]")
    for module in ("envelope", "ucan", "actors", "network", "executors", "orchestration"):
        session.run("python", "-m", f"benchmarks.{module}")
