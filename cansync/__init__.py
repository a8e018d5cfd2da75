"""cansync: peer-to-peer full-mirror replication for CAN Service, driven by an event journal."""

__version__ = "0.1.0"
