"""Link arbitration: both ends of a pair of connections keep the same one, whatever order they arrived in."""

from __future__ import annotations

from itertools import permutations

from hypothesis import assume, given
from hypothesis import strategies as st

from cansync.core.links import Link, keep_new_link

endpoint_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)
boots = st.binary(min_size=16, max_size=16)
link_ids = st.binary(min_size=32, max_size=32)


def survivor(our_id: str, peer: str, existing: Link, new: Link) -> Link:
    return new if keep_new_link(our_id, peer, existing, new) else existing


def last_standing(our_id: str, peer: str, arrivals: tuple[Link, ...]) -> Link:
    """The link kept after every one of `arrivals` came in, in that order."""
    kept = arrivals[0]
    for link in arrivals[1:]:
        kept = survivor(our_id, peer, kept, link)
    return kept


@st.composite
def link_pair(draw: st.DrawFn) -> tuple[str, str, Link, Link]:
    """Endpoints X and Y (either may be the smaller), and two links between them with one peer boot each
    way: L1 and L2, each dialed by X or Y, with distinct link ids."""
    x = draw(endpoint_ids)
    y = draw(endpoint_ids.filter(lambda e: e != x))
    id1 = draw(link_ids)
    id2 = draw(link_ids.filter(lambda i: i != id1))
    return x, y, Link(draw(st.sampled_from((x, y))), b"", id1), Link(draw(st.sampled_from((x, y))), b"", id2)


@given(pair=link_pair(), boot_of_x=boots, boot_of_y=boots, y_sees_l2_first=st.booleans())
def test_both_ends_keep_the_same_link(
    pair: tuple[str, str, Link, Link], boot_of_x: bytes, boot_of_y: bytes, y_sees_l2_first: bool
) -> None:
    x, y, l1, l2 = pair
    # each end sees the boot id the other announced; it is the same on both links (nobody restarted)
    x_view = (Link(l1.dialer, boot_of_y, l1.link_id), Link(l2.dialer, boot_of_y, l2.link_id))
    y_view = (Link(l1.dialer, boot_of_x, l1.link_id), Link(l2.dialer, boot_of_x, l2.link_id))
    kept_by_x = survivor(x, y, x_view[0], x_view[1])
    existing, new = (y_view[1], y_view[0]) if y_sees_l2_first else y_view
    kept_by_y = survivor(y, x, existing, new)
    assert kept_by_x.link_id == kept_by_y.link_id
    assert kept_by_x.dialer == kept_by_y.dialer


@given(pair=link_pair(), boot=boots)
def test_arrival_order_does_not_change_the_verdict_at_one_end(pair: tuple[str, str, Link, Link], boot: bytes) -> None:
    x, y, l1, l2 = pair
    l1, l2 = Link(l1.dialer, boot, l1.link_id), Link(l2.dialer, boot, l2.link_id)
    for our_id, peer in ((x, y), (y, x)):
        assert survivor(our_id, peer, l1, l2) == survivor(our_id, peer, l2, l1)


@given(pair=link_pair(), boot=boots)
def test_crossed_dials_keep_the_one_dialed_by_the_smaller_endpoint(
    pair: tuple[str, str, Link, Link], boot: bytes
) -> None:
    x, y, l1, l2 = pair
    assume(l1.dialer != l2.dialer)
    l1, l2 = Link(l1.dialer, boot, l1.link_id), Link(l2.dialer, boot, l2.link_id)
    assert survivor(x, y, l1, l2).dialer == min(x, y)
    assert survivor(y, x, l1, l2).dialer == min(x, y)


@given(pair=link_pair(), boot=boots)
def test_two_dials_the_same_way_keep_the_larger_link_id(pair: tuple[str, str, Link, Link], boot: bytes) -> None:
    x, y, l1, l2 = pair
    l1, l2 = Link(l1.dialer, boot, l1.link_id), Link(l1.dialer, boot, l2.link_id)
    assert survivor(x, y, l1, l2).link_id == max(l1.link_id, l2.link_id)
    assert survivor(y, x, l2, l1).link_id == max(l1.link_id, l2.link_id)


@given(
    x=endpoint_ids,
    y=endpoint_ids,
    dialers=st.lists(st.booleans(), min_size=3, max_size=3),
    ids=st.lists(link_ids, min_size=3, max_size=3, unique=True),
    boot=boots,
)
def test_three_links_in_any_order_leave_the_same_survivor_at_both_ends(
    x: str, y: str, dialers: list[bool], ids: list[bytes], boot: bytes
) -> None:
    assume(x != y)
    links = [Link(x if by_x else y, boot, link_id) for by_x, link_id in zip(dialers, ids, strict=True)]
    kept = {
        last_standing(our_id, peer, order).link_id for our_id, peer in ((x, y), (y, x)) for order in permutations(links)
    }
    assert len(kept) == 1


@given(pair=link_pair(), old_boot=boots, new_boot=boots, view_of_x=st.booleans())
def test_a_link_from_a_restarted_peer_always_replaces_the_old_one(
    pair: tuple[str, str, Link, Link], old_boot: bytes, new_boot: bytes, view_of_x: bool
) -> None:
    assume(old_boot != new_boot)
    x, y, l1, l2 = pair
    our_id, peer = (x, y) if view_of_x else (y, x)
    existing = Link(l1.dialer, old_boot, l1.link_id)
    restarted = Link(l2.dialer, new_boot, l2.link_id)
    assert keep_new_link(our_id, peer, existing, restarted)
    # whatever the dialer or link id would have said without the restart
    smaller_id = Link(l2.dialer, new_boot, min(l1.link_id, l2.link_id))
    assert keep_new_link(our_id, peer, Link(l1.dialer, old_boot, max(l1.link_id, l2.link_id)), smaller_id)


def test_examples_of_each_rule() -> None:
    small, large = "11" * 32, "ee" * 32
    boot = b"boot"
    by_small = Link(small, boot, b"\x01")
    by_large = Link(large, boot, b"\x02")
    # crossed dials: the one the smaller id dialed wins, at both ends, in both orders
    assert keep_new_link(small, large, by_large, by_small)
    assert not keep_new_link(small, large, by_small, by_large)
    assert keep_new_link(large, small, by_large, by_small)
    assert not keep_new_link(large, small, by_small, by_large)
    # the same dialer twice: the larger link id
    assert keep_new_link(small, large, Link(small, boot, b"\x01"), Link(small, boot, b"\x02"))
    assert not keep_new_link(small, large, Link(small, boot, b"\x02"), Link(small, boot, b"\x01"))
    # a restart beats even the rule that would keep the old one
    assert keep_new_link(small, large, by_small, Link(large, b"new boot", b"\x00"))
