"""The provider side of deployments: bids, commitments, hosted nodes and their allocations
(DESIGN §3.4, docs/orchestration.md)."""

from __future__ import annotations

from ._assess import Assessment, Host, Offer, assess, choose_gpus
from ._hosted import RESTART_LIMIT, HostedAllocation, HostedNode
from ._provider import DEPLOYMENT_TOPIC, AllocationActor, Provider, ProviderSettings

__all__ = [
    "DEPLOYMENT_TOPIC",
    "RESTART_LIMIT",
    "AllocationActor",
    "Assessment",
    "Host",
    "HostedAllocation",
    "HostedNode",
    "Offer",
    "Provider",
    "ProviderSettings",
    "assess",
    "choose_gpus",
]
