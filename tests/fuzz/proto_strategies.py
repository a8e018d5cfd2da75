"""Hypothesis strategies that build any protobuf message from its descriptor, and byte mutators.

Built from descriptors (not by hand) so a field added to proto/ is fuzzed without touching the tests.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

from cansync.wire.pb import can_sync_pb2, peer_pb2

MAX_REPEATED = 3
MAX_DEPTH = 3

# proto3 strings must be valid UTF-8: lone surrogates cannot even be assigned to a field
PROTO_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)

_INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def all_message_classes(*modules: ModuleType) -> list[type[Message]]:
    """Every top-level message class a generated _pb2 module defines."""
    classes = []
    for module in modules:
        for name in module.DESCRIPTOR.message_types_by_name:
            classes.append(getattr(module, name))
    return classes


ALL_MESSAGE_CLASSES: list[type[Message]] = all_message_classes(peer_pb2, can_sync_pb2)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        # edges first-class: 0, -1, the extremes are where varint/zigzag bugs live
        return st.one_of(st.sampled_from(sorted({low, high, 0, max(low, -1), min(high, 1)})), st.integers(low, high))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        return PROTO_TEXT
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, width=64 if field.type == FieldDescriptor.TYPE_DOUBLE else 32)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([value.number for value in field.enum_type.values])
    raise TypeError(f"no strategy for protobuf field type {field.type} ({field.full_name})")


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    msg = GetMessageClass(descriptor)()
    for field in descriptor.fields:
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and depth >= MAX_DEPTH:
            continue
        value_strategy = _message(field.message_type, depth + 1) if is_message else _scalar(field)
        if field.is_repeated:
            getattr(msg, field.name).extend(draw(st.lists(value_strategy, max_size=MAX_REPEATED)))
        elif not draw(st.booleans()):
            continue  # leave it unset (the default), as most real messages do for some fields
        elif is_message:
            getattr(msg, field.name).CopyFrom(draw(value_strategy))
        else:
            setattr(msg, field.name, draw(value_strategy))
    return msg


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    return _message(cls.DESCRIPTOR, 0)


ANY_MESSAGE: st.SearchStrategy[Message] = st.sampled_from(ALL_MESSAGE_CLASSES).flatmap(messages_of)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` truncated, bit-flipped, with bytes spliced in or cut out (one or more of these)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("truncate", "flip", "insert", "delete", "set_byte")))
        if op == "truncate":
            del out[draw(st.integers(0, len(out))) :]
        elif op == "flip" and out:
            at = draw(st.integers(0, len(out) - 1))
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            at = draw(st.integers(0, len(out)))
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            at = draw(st.integers(0, len(out) - 1))
            del out[at : at + draw(st.integers(1, 8))]
        elif op == "set_byte" and out:
            out[draw(st.integers(0, len(out) - 1))] = draw(st.sampled_from((0x00, 0x7F, 0x80, 0xFF)))
    return bytes(out)
