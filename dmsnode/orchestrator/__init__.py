"""The orchestrator side of deployments."""
