"""The reconciliation algorithm alone, in one process: no store, no agent, no network.

    .venv/bin/python bench/reconcile_algorithm_bench.py [--assets 1000000] [--diff 1000] [--quick]

Two cases over random 32-byte ids: two sets of `--assets` ids that differ in `--diff` (half only on each
side), and two identical sets. For each: CPU seconds to build each side's `DigestSet`, CPU seconds of the
whole exchange (both sides' `Reconciler` and the codec, encoding every message and decoding it on the
other side), the bytes of the encoded messages, and the number of messages. The two sides run one after
the other here; between two agents the builds run at once on two machines while the messages alternate,
so `first_meeting_s` = the slower build + the exchange. Checks that both sides learned exactly the
difference, prints a table and writes bench/results/reconcile_algorithm.json.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cansync.core.reconcile import (  # noqa: E402
    DEFAULT_BRANCHING,
    DEFAULT_ID_LIST_THRESHOLD,
    DigestSet,
    RangeFingerprint,
    RangeIds,
    Reconciler,
)
from cansync.wire.reconcile_codec import decode_reconcile, encode_reconcile  # noqa: E402

# the aims of issue 14, for a first meeting of two million-asset stores
AIM_DIFFERENT = {"seconds": 15.0, "wire_bytes": 4_000_000}
AIM_IDENTICAL = {"seconds": 2.0, "wire_bytes": 50_000}


@dataclass
class ExchangeTally:
    messages: int = 0
    wire_bytes: int = 0
    fingerprints: int = 0
    ids_listed: int = 0
    ids_of_difference: int = 0
    largest_message_bytes: int = 0


def make_sets(assets: int, diff: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """Two lists of `assets` distinct random ids sharing all but `diff` (half only in each)."""
    rng = random.Random(seed)
    only_each = diff // 2
    common = [rng.randbytes(32) for _ in range(assets - only_each)]
    only_a = [rng.randbytes(32) for _ in range(only_each)]
    only_b = [rng.randbytes(32) for _ in range(diff - only_each)]
    return common + only_a, common + only_b


def cpu_seconds(started: float) -> float:
    return time.process_time() - started


def run_exchange(initiator: Reconciler, responder: Reconciler, tally: ExchangeTally) -> None:
    """Alternate messages, each through the codec, until neither side has anything to say."""
    outgoing = initiator.initiate()
    receiver, sender = responder, initiator
    while True:
        data = encode_reconcile(outgoing)
        tally.messages += 1
        tally.wire_bytes += len(data)
        tally.largest_message_bytes = max(tally.largest_message_bytes, len(data))
        for item in outgoing.ranges:
            if isinstance(item, RangeFingerprint):
                tally.fingerprints += 1
            elif isinstance(item, RangeIds):
                tally.ids_listed += len(item.ids)
        tally.ids_of_difference += len(outgoing.ids_you_lack) + len(outgoing.ids_i_lack)
        answer = receiver.respond(decode_reconcile(data))
        if answer is None:
            return
        outgoing = answer
        receiver, sender = sender, receiver


def run_case(name: str, ids_a: list[bytes], ids_b: list[bytes]) -> dict[str, Any]:
    started = time.process_time()
    set_a = DigestSet(ids_a)
    build_a_s = cpu_seconds(started)
    started = time.process_time()
    set_b = DigestSet(ids_b)
    build_b_s = cpu_seconds(started)

    initiator, responder = Reconciler(set_a), Reconciler(set_b)
    tally = ExchangeTally()
    started = time.process_time()
    run_exchange(initiator, responder, tally)
    exchange_s = cpu_seconds(started)

    if not (initiator.finished and responder.finished):
        raise SystemExit(f"{name}: the exchange stopped before both sides finished")
    only_a, only_b = set(ids_a) - set(ids_b), set(ids_b) - set(ids_a)
    if (initiator.they_lack, initiator.have_not, responder.they_lack, responder.have_not) != (
        only_a,
        only_b,
        only_b,
        only_a,
    ):
        raise SystemExit(f"{name}: the sides did not learn exactly the difference")
    return {
        "case": name,
        "assets_each": len(set_a),
        "difference": len(only_a) + len(only_b),
        "build_initiator_s": round(build_a_s, 3),
        "build_responder_s": round(build_b_s, 3),
        "exchange_s": round(exchange_s, 3),
        "first_meeting_s": round(max(build_a_s, build_b_s) + exchange_s, 3),
        "all_cpu_s": round(build_a_s + build_b_s + exchange_s, 3),
        "wire_bytes": tally.wire_bytes,
        "messages": tally.messages,
        "round_trips": (tally.messages + 1) // 2,
        "fingerprints": tally.fingerprints,
        "ids_listed": tally.ids_listed,
        "ids_of_difference": tally.ids_of_difference,
        "largest_message_bytes": tally.largest_message_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=1_000_000, help="ids on each side")
    parser.add_argument("--diff", type=int, default=1_000, help="ids on only one side, half each way")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--quick", action="store_true", help="100,000 ids and 100 differences")
    args = parser.parse_args()
    assets, diff = (100_000, 100) if args.quick else (args.assets, args.diff)

    ids_a, ids_b = make_sets(assets, diff, args.seed)
    different = run_case("different", ids_a, ids_b)
    identical = run_case("identical", ids_a, list(ids_a))
    del ids_a, ids_b
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    cases = [(different, AIM_DIFFERENT), (identical, AIM_IDENTICAL)]
    for case, aim in cases:
        case["aim"] = aim
        case["within_aim"] = case["first_meeting_s"] < aim["seconds"] and case["wire_bytes"] < aim["wire_bytes"]

    from common import print_table, write_results  # the bench helpers, imported once the timing is done

    columns = [
        "case",
        "assets_each",
        "difference",
        "build_initiator_s",
        "build_responder_s",
        "exchange_s",
        "first_meeting_s",
        "wire_bytes",
        "messages",
        "fingerprints",
        "ids_listed",
        "within_aim",
    ]
    print_table(
        f"reconciliation, in process (branching {DEFAULT_BRANCHING}, id-list threshold {DEFAULT_ID_LIST_THRESHOLD}; "
        f"peak RSS {peak_rss_mb} MB for both sides and the inputs)",
        columns,
        [[case[column] for column in columns] for case, _aim in cases],
    )
    write_results(
        "reconcile_algorithm",
        {
            "branching": DEFAULT_BRANCHING,
            "id_list_threshold": DEFAULT_ID_LIST_THRESHOLD,
            "peak_rss_mb": peak_rss_mb,
            "cases": [case for case, _aim in cases],
        },
    )


if __name__ == "__main__":
    main()
