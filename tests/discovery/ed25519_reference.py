"""A slow, independent Ed25519 public-key derivation written from the RFC 8032 math, used only as a test oracle.

It shares no code with cansync (which uses the `cryptography` wheel): affine Edwards arithmetic in
plain integers, so a slot key that matches here was derived two unrelated ways.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_MINUS_ONE = pow(2, (P - 1) // 4, P)


def _inverse(value: int) -> int:
    return pow(value, P - 2, P)


def _x_from_y(y: int) -> int:
    x_squared = (y * y - 1) * _inverse(D * y * y + 1) % P
    x = pow(x_squared, (P + 3) // 8, P)
    if (x * x - x_squared) % P:
        x = x * SQRT_MINUS_ONE % P
    return P - x if x % 2 else x


BASE_Y = 4 * _inverse(5) % P
BASE = (_x_from_y(BASE_Y), BASE_Y)


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * _inverse(1 + t) % P, (y1 * y2 + x1 * x2) * _inverse(1 - t) % P)


def _multiply(scalar: int, point: tuple[int, int]) -> tuple[int, int]:
    result = (0, 1)  # the neutral element
    addend = point
    while scalar:
        if scalar & 1:
            result = _add(result, addend)
        addend = _add(addend, addend)
        scalar >>= 1
    return result


def public_key_from_seed(seed: bytes) -> bytes:
    """RFC 8032 5.1.5: clamp the first half of SHA-512(seed), multiply the base point, encode y with x's sign."""
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    x, y = _multiply(scalar, BASE)
    return (y | ((x & 1) << 255)).to_bytes(32, "little")
