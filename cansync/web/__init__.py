"""The agent's dashboard, JSON API and /metrics: a layer above agent/ that reads and never decides."""
