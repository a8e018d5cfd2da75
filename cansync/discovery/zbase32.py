"""z-base-32, the text form of pkarr public keys (lowercase, no padding, MSB-first 5-bit groups).

Decoding is strict: only lowercase alphabet characters, and the string must be the canonical
encoding of its bytes (the unused low bits of the last character are zero). A lenient decoder would
map several strings to one key; refusing those early keeps key comparison by string safe.
"""

from __future__ import annotations

ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_VALUE_OF = {ch: i for i, ch in enumerate(ALPHABET)}


class ZBase32Error(ValueError):
    """The text is not canonical z-base-32."""


def encode(data: bytes) -> str:
    """Encode bytes; 32 bytes give 52 characters."""
    bit_count = len(data) * 8
    if bit_count == 0:
        return ""
    # Treat the input as one big integer and left-align it to a multiple of 5 bits.
    pad_bits = (-bit_count) % 5
    number = int.from_bytes(data, "big") << pad_bits
    chars = []
    for shift in range(bit_count + pad_bits - 5, -1, -5):
        chars.append(ALPHABET[(number >> shift) & 0x1F])
    return "".join(chars)


def decode(text: str) -> bytes:
    """Decode canonical z-base-32; raise ZBase32Error for anything else."""
    number = 0
    for position, ch in enumerate(text):
        value = _VALUE_OF.get(ch)
        if value is None:
            raise ZBase32Error(f"{ch!r} at position {position} is not a z-base-32 character (lowercase only)")
        number = (number << 5) | value
    total_bits = len(text) * 5
    byte_count = total_bits // 8
    pad_bits = total_bits - byte_count * 8
    if pad_bits >= 5:
        raise ZBase32Error(f"{len(text)} characters is not a valid z-base-32 length")
    if number & ((1 << pad_bits) - 1):
        raise ZBase32Error("the last character has non-zero padding bits (not the canonical encoding)")
    return (number >> pad_bits).to_bytes(byte_count, "big")
