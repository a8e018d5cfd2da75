"""The assets our store holds, each with the journal seq that made it ours.

Kept by the 32 raw bytes of each id rather than its 64 hex characters: a million ids then take about
80 MB of keys instead of 128 MB, and a reconciliation's digest set is built from them without
decoding. The machine and the protocol rules still speak hex ids; the conversion happens here, at each
lookup (about a tenth of a microsecond), so nothing outside this module sees the raw form except
where it is wanted (`raw_ids`, the snapshot).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class LocalAssets:
    __slots__ = ("_seqs",)

    def __init__(self, seqs: dict[bytes, int] | None = None) -> None:
        self._seqs: dict[bytes, int] = seqs if seqs is not None else {}

    @classmethod
    def of(cls, items: Iterable[tuple[str, int]]) -> LocalAssets:
        return cls({bytes.fromhex(asset): seq for asset, seq in items})

    @classmethod
    def from_raw(cls, raw_ids: Iterable[bytes], seqs: Iterable[int]) -> LocalAssets:
        return cls(dict(zip(raw_ids, seqs, strict=True)))

    def __len__(self) -> int:
        return len(self._seqs)

    def __bool__(self) -> bool:
        return bool(self._seqs)

    def __contains__(self, asset: object) -> bool:
        try:
            return bytes.fromhex(asset) in self._seqs  # type: ignore[arg-type]
        except (TypeError, ValueError):  # not an id at all: never ours
            return False

    def note(self, asset: str, seq: int) -> None:
        """Ours since `seq`: the earliest seq that said so wins, and a known seq wins over none (0)."""
        raw = bytes.fromhex(asset)
        known = self._seqs.get(raw)
        if known is None or (seq and (not known or seq < known)):
            self._seqs[raw] = seq

    def get(self, asset: str) -> int | None:
        try:
            return self._seqs.get(bytes.fromhex(asset))
        except (TypeError, ValueError):  # not an id at all: never ours
            return None

    def __getitem__(self, asset: str) -> int:
        seq = self.get(asset)
        if seq is None:
            raise KeyError(asset)
        return seq

    def __setitem__(self, asset: str, seq: int) -> None:
        self._seqs[bytes.fromhex(asset)] = seq

    def __iter__(self) -> Iterator[str]:
        return (raw.hex() for raw in self._seqs)

    def items(self) -> Iterator[tuple[str, int]]:
        return ((raw.hex(), seq) for raw, seq in self._seqs.items())

    def values(self) -> Iterable[int]:
        return self._seqs.values()

    def since(self, seq: int) -> list[str]:
        """Ids that became ours after `seq` (only these are decoded: the comparison runs on the seqs)."""
        return [raw.hex() for raw, made in self._seqs.items() if made > seq]

    def raw_ids(self) -> list[bytes]:
        return list(self._seqs)

    def sorted_raw(self) -> tuple[list[bytes], list[int]]:
        """Ids in byte order (the same as hex order) with their seqs, for a snapshot."""
        ordered = sorted(self._seqs)
        seqs = self._seqs
        return ordered, [seqs[raw] for raw in ordered]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LocalAssets):
            return self._seqs == other._seqs
        return NotImplemented

    def __repr__(self) -> str:
        return f"LocalAssets({len(self._seqs)} assets)"
