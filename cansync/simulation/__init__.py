"""Whole agents in one process under a seeded scheduler and clock: the in-memory store and transport they
run on (held to the contract tests of the real ones), the faults a run injects, and what every run must
end with. tests/simulation runs a short campaign; bench/simulate.py runs long ones and replays a seed."""
