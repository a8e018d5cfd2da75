"""Our assets kept by raw id: every lookup by hex id answers as a dict of hex ids would, and a snapshot
of them reads back the same."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from cansync.core.local_assets import LocalAssets
from cansync.core.machine import SyncState


def asset(n: int) -> str:
    return hashlib.sha256(n.to_bytes(4, "big")).hexdigest()


@given(st.dictionaries(st.integers(0, 500).map(asset), st.integers(1, 10_000), max_size=60), st.integers(0, 10_000))
def test_answers_as_a_dict_of_hex_ids_would(model: dict[str, int], cut: int):
    local = LocalAssets.of(model.items())
    assert len(local) == len(model) and bool(local) == bool(model)
    assert set(local) == set(model)
    assert dict(local.items()) == model
    assert sorted(local.since(cut)) == sorted(a for a, seq in model.items() if seq > cut)
    for n in range(0, 500, 7):
        assert (asset(n) in local) == (asset(n) in model)
        assert local.get(asset(n)) == model.get(asset(n))
    ordered, seqs = local.sorted_raw()
    assert [raw.hex() for raw in ordered] == sorted(model)
    assert seqs == [model[a] for a in sorted(model)]


def test_what_is_not_an_id_is_never_ours():
    local = LocalAssets.of([(asset(1), 3)])
    for stranger in ("", "zz" * 32, asset(1)[:10], asset(1) + "00", None, 42):
        assert stranger not in local
    assert local.get("not hex") is None


def test_setting_an_asset_again_replaces_its_seq():
    local = LocalAssets()
    local[asset(1)] = 9
    local[asset(1)] = 4
    assert local[asset(1)] == 4 and len(local) == 1
    assert local.raw_ids() == [bytes.fromhex(asset(1))]


def test_a_snapshot_carries_our_assets_and_their_seqs():
    state = SyncState()
    for n in range(300):
        state.local[asset(n)] = 1000 - n
    state.last_seq = 1000
    again = SyncState.from_snapshot(state.to_snapshot())
    assert again.local == state.local
    assert again.local[asset(299)] == 701
