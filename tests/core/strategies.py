"""Hypothesis strategies for journal-shaped event streams: a few peers, a handful of assets."""

from __future__ import annotations

from hypothesis import strategies as st

from cansync.core.events import Event, EventKind

PEERS = ("aa" * 32, "bb" * 32, "cc" * 32)
ASSETS = tuple(f"{i:064x}" for i in range(1, 7))

assets = st.sampled_from(ASSETS)
directions = st.sampled_from(("in", "out"))
offsets = st.integers(min_value=0, max_value=1 << 20)
times = st.integers(min_value=1, max_value=10**6)

meta_data = st.fixed_dictionaries(
    {
        "updated_ms": st.integers(min_value=0, max_value=20),
        "origin": st.sampled_from(PEERS + ("",)),
        "tags": st.lists(st.sampled_from(("a", "b", "c")), max_size=2),
        "description": st.sampled_from(("", "x", "y")),
        "trashed": st.booleans(),
    }
)


def peer_event(peer: str) -> st.SearchStrategy[Event]:
    """One event concerning `peer`, of any kind a peer's stream can hold."""
    simple = st.sampled_from(
        (
            EventKind.PEER_CONNECTED,
            EventKind.PEER_AUTHENTICATED,
            EventKind.PEER_DISCONNECTED,
            EventKind.PEER_PROTOCOL_ERROR,
            EventKind.PEER_PAUSED,
            EventKind.PEER_RESUMED,
        )
    ).map(lambda k: Event(k, peer=peer))
    return st.one_of(
        simple,
        st.builds(
            lambda via: Event(EventKind.PEER_DISCOVERED, peer=peer, data={"via": via}),
            st.sampled_from(("ticket", "pkarr", "lan")),
        ),
        st.builds(
            lambda r: Event(EventKind.PEER_REJECTED, peer=peer, data={"reason": r}),
            st.sampled_from(("bad proof", "stranger")),
        ),
        st.builds(
            lambda hs, w: Event(EventKind.HASHES_ADVERTISED, peer=peer, data={"hashes": hs, "watermark": w}),
            st.lists(assets, max_size=4, unique=True),
            st.integers(0, 100),
        ),
        st.builds(
            lambda hs, w: Event(EventKind.HASHES_SENT, peer=peer, data={"hashes": hs, "watermark": w}),
            st.lists(assets, max_size=4, unique=True),
            st.integers(0, 100),
        ),
        st.builds(
            lambda k, h, d, o: Event(k, peer=peer, hash=h, data={"direction": d, "offset": o, "size": 1 << 20}),
            st.sampled_from(
                (EventKind.TRANSFER_REQUESTED, EventKind.TRANSFER_STARTED, EventKind.TRANSFER_CHECKPOINTED)
            ),
            assets,
            directions,
            offsets,
        ),
        st.builds(
            lambda h, d, stored: Event(
                EventKind.TRANSFER_COMPLETED,
                peer=peer,
                hash=h,
                data={"direction": d, "size": 1 << 20, **({"stored": True} if stored else {})},
            ),
            assets,
            directions,
            st.booleans(),
        ),
        st.builds(
            lambda h, d, discard: Event(
                EventKind.TRANSFER_FAILED, peer=peer, hash=h, data={"direction": d, "discard": discard}
            ),
            assets,
            directions,
            st.booleans(),
        ),
        st.builds(lambda h: Event(EventKind.ASSET_RECEIVED, peer=peer, hash=h), assets),
        st.builds(
            lambda lacks, extra, w: Event(
                EventKind.PEER_RECONCILED, peer=peer, data={"lacks": lacks, "extra": extra, "watermark": w}
            ),
            st.lists(assets, max_size=3, unique=True),
            st.lists(assets, max_size=3, unique=True),
            st.integers(0, 100),
        ),
        st.builds(lambda h, m: Event(EventKind.METADATA_CHANGED, peer=peer, hash=h, data=m), assets, meta_data),
    )


local_event = st.one_of(
    st.builds(
        lambda h, c: Event(EventKind.LOCAL_ASSET_SEEN, hash=h, data={"size": 1, "changed_seq": c}),
        assets,
        st.integers(0, 50),
    ),
    st.builds(lambda h, m: Event(EventKind.METADATA_CHANGED, hash=h, data=m), assets, meta_data),
)

STREAM_KEYS = PEERS + (None,)


@st.composite
def journal(draw: st.DrawFn, max_per_stream: int = 12) -> dict[str | None, list[Event]]:
    """Per-stream event lists (one per peer, one for our own store) with unique journal seqs.

    Seqs come from one canonical interleaving, so every event has its journal identity; another
    interleaving then models the same facts arriving in a different cross-peer order.
    """
    streams: dict[str | None, list[Event]] = {}
    for key in STREAM_KEYS:
        strategy = local_event if key is None else peer_event(key)
        streams[key] = draw(st.lists(strategy, max_size=max_per_stream))
    order = draw(interleaving({k: len(v) for k, v in streams.items()}))
    positions = dict.fromkeys(streams, 0)
    seq = 0
    stamped: dict[str | None, list[Event]] = {k: [] for k in streams}
    for key in order:
        seq += 1
        event = streams[key][positions[key]]
        positions[key] += 1
        stamped[key].append(event.journaled(seq, time_ms=1000 + seq))
    return stamped


def interleaving(lengths: dict[str | None, int]) -> st.SearchStrategy[list[str | None]]:
    """A merge order: each stream key repeated by its length, shuffled (each stream's own order is kept
    by taking its events in order as its key comes up)."""
    keys = [k for k, n in lengths.items() for _ in range(n)]
    return st.permutations(keys)


def merge(streams: dict[str | None, list[Event]], order: list[str | None]) -> list[Event]:
    positions = dict.fromkeys(streams, 0)
    merged = []
    for key in order:
        merged.append(streams[key][positions[key]])
        positions[key] += 1
    return merged
