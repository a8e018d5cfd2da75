"""The pure core: event types and the per-peer sync machine. No I/O, no clock, no randomness."""
