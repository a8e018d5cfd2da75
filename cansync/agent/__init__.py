"""Wiring: one session per peer, the live loop, start and stop. The only layer that knows them all."""
