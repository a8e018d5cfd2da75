"""Slot keys derived independently in the test (blake3 here, Ed25519 from the RFC math) match the code's."""

from __future__ import annotations

import blake3
import pytest

from cansync.discovery import zbase32
from cansync.discovery.rendezvous import NUM_SLOTS, slot_keys, slot_seed
from tests.discovery.ed25519_reference import public_key_from_seed

# pkarr-notes §5, passphrase `my-secret-phrase` (pynacl, cryptography and libsodium-JS agreed on it).
MY_SECRET_PHRASE_TABLE = [
    (
        "8de3c9e1ba45579fd6cd93b88c33f63218ad3cbfe002eed9d32440ffe143e8ff",
        "tic7sa569tzhisnh6i89adxyjejjxa59ps7f8p39owc3811iirwy",
    ),
    (
        "7a408ded3db9382ad5cbc8dff03ae34b58ec02f16c82a4ccc442575a4e69e6b0",
        "yy3gzwfr46chb35rcaijkm7119iujbzg3uquhr9i3giz84mh4ejy",
    ),
    (
        "cf6d90f53f2c72e4c136d33790e325ed8449544267a9a8f7d31a1a4484a92a66",
        "7z47bafqsixsi4wf9ks6ntoamo3snnmkukwnafrtz4cu9hn19byy",
    ),
    (
        "fae5ff18648ac4edc3cbbfac280136caf242baf6b356845a8c2a8434aade5e8c",
        "qhghnjnwmykyy5r8a7scyx6q7yzoxfh7mzab75iu9qr3c6q946xy",
    ),
    (
        "4bbf5e77de8cbfe46cfba6d8b3079887c3cdb4250578848aa2add03653be3b7c",
        "tky9ztntoazr9ktte7aquc34jyqwgofrre4nrmxzrps1sddrnefy",
    ),
    (
        "a163695270d44278f054ab8e5db06540dac15b0e78795903967512fdee970418",
        "ecmhj7w9sustmnrrt1iigcdjdnynou6p48ymr1mwbz3a5q3uu8go",
    ),
    (
        "e1d7183358c4aca010ee8ab433637cb6f8fe966b653ebd386c4918b4437a01ad",
        "opk4xaqqzdxmrzp8oeyprzp4kc59tby4mjkhpithhtwzpsdgbg8y",
    ),
    (
        "beb00f486da4945168df77ebae88f68385b1aae35164bd8d64ac0216429ea366",
        "1jwsqiasoezzp3bwp1k64yoq1p3757qyjkh9b1ojj57pkcxmtydo",
    ),
]


def test_known_table_for_my_secret_phrase() -> None:
    keys = slot_keys("my-secret-phrase")
    assert [(k.seed.hex(), k.z32) for k in keys] == MY_SECRET_PHRASE_TABLE
    assert [k.index for k in keys] == list(range(NUM_SLOTS))


@pytest.mark.parametrize("passphrase", ["correct horse battery staple", "ünïcødé ☃ phrase", "", "a:b:7"])
def test_slot_keys_match_an_independent_derivation(passphrase: str) -> None:
    for key in slot_keys(passphrase):
        expected_seed = blake3.blake3(
            ("can-sync-rendezvous:" + passphrase + ":" + str(key.index)).encode("utf-8")
        ).digest()
        assert key.seed == expected_seed == slot_seed(passphrase, key.index)
        expected_public = public_key_from_seed(expected_seed)
        assert key.public_key == expected_public
        assert key.z32 == zbase32.encode(expected_public)


def test_slots_differ_between_passphrases_and_slot_range_is_checked() -> None:
    assert {k.public_key for k in slot_keys("one")}.isdisjoint({k.public_key for k in slot_keys("two")})
    with pytest.raises(ValueError, match="0..7"):
        slot_seed("x", 8)
