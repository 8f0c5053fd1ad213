"""What orchestrators and providers say to each other about deployments: bid requests, bids and
refusals, and the names of the behaviours (DESIGN §3.4, docs/orchestration.md)."""

from __future__ import annotations

from ._messages import (
    MAX_NODES_PER_REQUEST,
    Bid,
    BidRequest,
    NodeRequest,
    Refusal,
    gpu_fits,
    location_problem,
)
from ._parts import COPY_MARK, base_name, node_part, node_request, node_requests, read_part

__all__ = [
    "COPY_MARK",
    "MAX_NODES_PER_REQUEST",
    "Bid",
    "BidRequest",
    "NodeRequest",
    "Refusal",
    "base_name",
    "gpu_fits",
    "location_problem",
    "node_part",
    "node_request",
    "node_requests",
    "read_part",
]
