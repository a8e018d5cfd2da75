"""Bytes to messages and back: frames, protobuf messages, size caps. No streams, no I/O."""
