"""Start-to-exit time of a trivial job (``true``) through each executor, beside what it cannot
beat, in the same run: subject and baseline alternate (order swapped every round), medians
are reported.

- ``docker_job``: :class:`DockerExecutor` ``start`` -> ``wait`` -> ``cleanup`` of ``true`` in
  the test image (``DMSNODE_TEST_IMAGE``, by default the busybox one ``.ci/build-test-image.sh``
  builds), seconds;
- ``docker_run_baseline``: ``docker run --rm`` of the same image and command (the CLI also
  creates, starts, waits and removes), seconds;
- ``docker_overhead_ratio``: the median of the per-round ratios (goal <= 1.10);
- ``process_job``: :class:`ProcessExecutor` ``start`` -> ``wait`` of ``true`` (its sandbox,
  limits and monitor; ``cleanup`` is not timed), seconds. Each start takes the spare monitor
  made while the previous round ran (as on a node, whose executor keeps one ready): making
  it is not timed, but it shares the machine with the round it overlaps;
- ``subprocess_baseline``: ``subprocess.run(["true"])``, seconds;
- ``process_overhead_ms``: the median of the per-round differences, milliseconds (goal <= 20).

The docker part runs against the daemon ``DOCKER_HOST`` names and is skipped, with a line
saying why, where there is none. ``python -m benchmarks.executors [--rounds N]``; results are
JSON lines (``benchmarks._measure.emit``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from dmsnode.executors import ExecutionSpec, Executor

from ._measure import emit

DEFAULT_IMAGE = "dmsnode-test/busybox:latest"
ROUNDS = 15
WARMUP = 2
NODE = "benchmark-executors"


def skip(part: str, reason: str) -> None:
    """A JSON line saying a part did not run, and why."""
    print(json.dumps({"name": part, "skipped": reason}), flush=True)


async def job_time(executor: Executor, spec: ExecutionSpec, *, cleanup_timed: bool) -> float:
    """Seconds from ``start`` until ``wait`` returns (and ``cleanup`` if timed)."""
    started = time.perf_counter()
    execution = await executor.start(spec)
    status = await execution.wait()
    if cleanup_timed:
        await execution.cleanup()
    elapsed = time.perf_counter() - started
    if not cleanup_timed:
        await execution.cleanup()
    if status.exit_code != 0:
        raise RuntimeError(f"the benchmark's job failed: {status}")
    return elapsed


def command_time(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


async def interleave(
    subject: Callable[[], Awaitable[float]],
    baseline: Callable[[], float],
    rounds: int,
) -> tuple[list[float], list[float]]:
    """Per-round times of ``subject`` and ``baseline``, alternating which goes first."""
    for _ in range(WARMUP):
        await subject()
        baseline()
    subjects: list[float] = []
    baselines: list[float] = []
    for index in range(rounds):
        if index % 2:
            baselines.append(baseline())
            subjects.append(await subject())
        else:
            subjects.append(await subject())
            baselines.append(baseline())
    return subjects, baselines


async def docker_part(rounds: int) -> None:
    from dmsnode.executors import DockerExecutor

    image = os.environ.get("DMSNODE_TEST_IMAGE") or DEFAULT_IMAGE
    if shutil.which("docker") is None:
        skip("docker", "no docker CLI for the docker run baseline")
        return
    async with DockerExecutor(node_id=NODE) as executor:
        availability = await executor.availability()
        if not availability.available:
            skip("docker", availability.reason)
            return
        probe = await trio.run_process(
            ["docker", "image", "inspect", image],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if probe.returncode != 0:
            skip("docker", f"no image {image} (build it with .ci/build-test-image.sh)")
            return

        async def docker_job() -> float:
            spec = ExecutionSpec(
                allocation_id=f"bench-{uuid.uuid4().hex[:8]}", image=image, command=("true",)
            )
            return await job_time(executor, spec, cleanup_timed=True)

        def docker_run() -> float:
            return command_time(["docker", "run", "--rm", image, "true"])

        jobs, runs = await interleave(docker_job, docker_run, rounds)
    emit("docker_job", statistics.median(jobs), "s")
    emit("docker_run_baseline", statistics.median(runs), "s")
    emit(
        "docker_overhead_ratio",
        statistics.median(j / r for j, r in zip(jobs, runs, strict=True)),
        "ratio",
    )


async def process_part(rounds: int) -> None:
    try:
        from dmsnode.executors import ProcessExecutor
    except ImportError as exc:
        skip("process", f"no process executor here: {exc}")
        return
    true = shutil.which("true") or "/bin/true"
    with tempfile.TemporaryDirectory(prefix="dmsnode-bench-") as root:
        async with ProcessExecutor(Path(root), node_id=NODE) as executor:
            availability = await executor.availability()
            if not availability.available:
                skip("process", availability.reason)
                return

            async def process_job() -> float:
                spec = ExecutionSpec(
                    allocation_id=f"bench-{uuid.uuid4().hex[:8]}", command=("true",)
                )
                return await job_time(executor, spec, cleanup_timed=False)

            def bare() -> float:
                return command_time([true])

            jobs, bares = await interleave(process_job, bare, rounds)
    emit("process_job", statistics.median(jobs), "s")
    emit("subprocess_baseline", statistics.median(bares), "s")
    emit(
        "process_overhead_ms",
        statistics.median((j - b) * 1000 for j, b in zip(jobs, bares, strict=True)),
        "ms",
    )


async def main(rounds: int) -> None:
    await docker_part(rounds)
    await process_part(rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed rounds per pair")
    trio.run(main, parser.parse_args().rounds)
