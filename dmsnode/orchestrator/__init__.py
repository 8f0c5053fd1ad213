"""The orchestrator side of deployments: bids, candidate selection, two-phase commit, waves,
supervision and shutdown (DESIGN §3.4, docs/orchestration.md)."""

from __future__ import annotations

from ._deployment import TERMINAL, Deployment, DeploymentState
from ._orchestrator import Orchestrator, OrchestratorSettings
from ._selection import Rejection, Selection, bid_problem, estimate_rtt, score, select

__all__ = [
    "TERMINAL",
    "Deployment",
    "DeploymentState",
    "Orchestrator",
    "OrchestratorSettings",
    "Rejection",
    "Selection",
    "bid_problem",
    "estimate_rtt",
    "score",
    "select",
]
