"""Delimited protobuf messages in a streamed body: a 4-byte big-endian length, then the message.

(proto/can_sync.proto documents the layout. The client, cansync/can/, has its own reader of the same
layout, since the store and the agent share no code beyond the generated messages.)
"""

from __future__ import annotations

import asyncio
import struct
from typing import TypeVar

import aiohttp
from aiohttp import StreamReader
from google.protobuf.message import DecodeError, Message

from cansync.store.errors import BadRequest

LENGTH_PREFIX = struct.Struct(">I")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

M = TypeVar("M", bound=Message)


def encode_delimited(message: Message) -> bytes:
    body = message.SerializeToString()
    return LENGTH_PREFIX.pack(len(body)) + body


async def read_delimited(stream: StreamReader, message_type: type[M], what: str) -> M:
    """Read one length-prefixed message from a request body, or raise BadRequest naming `what`."""
    message = await read_next_delimited(stream, message_type, what)
    if message is None:
        raise BadRequest(f"{what}: the body ends before the 4-byte length prefix")
    return message


async def read_next_delimited(stream: StreamReader, message_type: type[M], what: str) -> M | None:
    """The next length-prefixed message of a body holding a sequence of them; None when the body ends
    exactly before one (the sequence is over). BadRequest for a body that ends inside one."""
    try:
        (length,) = LENGTH_PREFIX.unpack(await stream.readexactly(LENGTH_PREFIX.size))
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise BadRequest(f"{what}: the body ends inside a 4-byte length prefix") from exc
    except (aiohttp.ClientPayloadError, ValueError) as exc:  # body cut off
        raise BadRequest(f"{what}: the body ends before the 4-byte length prefix") from exc
    if length > MAX_MESSAGE_BYTES:
        raise BadRequest(f"{what}: message of {length} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    try:
        payload = await stream.readexactly(length)
    except (asyncio.IncompleteReadError, aiohttp.ClientPayloadError, ValueError) as exc:
        raise BadRequest(f"{what}: the body ends inside the {length}-byte message") from exc
    return parse_message(payload, message_type, what)


def parse_message(payload: bytes, message_type: type[M], what: str) -> M:
    message = message_type()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise BadRequest(f"{what}: not a valid {message_type.__name__} protobuf message ({exc})") from exc
    return message
