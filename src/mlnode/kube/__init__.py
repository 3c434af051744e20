"""Kubernetes API access for the agent (and the doctor): nodes, events, config maps."""
