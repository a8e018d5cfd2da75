"""Coverage-guided fuzzing (atheris / libFuzzer) of the peer frame decoder and every protobuf message.

    .venv/bin/python bench/fuzz_atheris.py --iterations 200000 [--max-len 4096]

Each input is fed to a FrameDecoder (small caps, split at points the input chooses), every frame that
comes out goes through decode_message, and the input is also parsed as each message of peer.proto and
can_sync.proto. Allowed failures are FrameError and protobuf's DecodeError; any other exception is a
crash: counted (not fatal, so one run reports them all), the first few printed with their input.
Prints iterations, crashes, elapsed seconds and the rate. Needs `pip install atheris` in .venv.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import atheris

with atheris.instrument_imports(include=["cansync"]):
    from google.protobuf.message import DecodeError, Message

    from cansync.wire.frames import FrameDecoder, FrameError, FrameLimits, decode_message
    from cansync.wire.pb import can_sync_pb2, peer_pb2

MESSAGE_CLASSES: list[type[Message]] = [
    getattr(module, name) for module in (peer_pb2, can_sync_pb2) for name in module.DESCRIPTOR.message_types_by_name
]
LIMITS = FrameLimits(control_cap=512, chunk_cap=256)
SHOWN_CRASHES = 5


class Tally:
    def __init__(self, iterations: int) -> None:
        self.iterations = iterations
        self.done = 0
        self.crashes = 0
        self.started = time.monotonic()

    def crash(self, data: bytes, exc: BaseException) -> None:
        self.crashes += 1
        if self.crashes <= SHOWN_CRASHES:
            print(f"CRASH {type(exc).__name__}: {exc} on input {data[:200]!r}", flush=True)

    def report(self) -> None:
        elapsed = time.monotonic() - self.started
        print(
            f"iterations={self.done} crashes={self.crashes} elapsed_s={elapsed:.1f} "
            f"rate_per_s={self.done / elapsed:.0f}",
            flush=True,
        )


def exercise(data: bytes) -> None:
    """One input through the decoder and every message parser; only the allowed errors escape."""
    provider = atheris.FuzzedDataProvider(data)
    cuts = sorted(provider.ConsumeIntInRange(0, 255) for _ in range(provider.ConsumeIntInRange(0, 4)))
    stream = provider.ConsumeBytes(atheris.ALL_REMAINING)
    decoder = FrameDecoder(LIMITS)
    try:
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            for ftype, payload in decoder.feed(stream[start:end]):
                try:
                    decode_message(ftype, payload)
                except FrameError:
                    pass
    except FrameError:
        pass
    for cls in MESSAGE_CLASSES:
        try:
            cls().ParseFromString(stream)
        except DecodeError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, required=True, help="inputs to run, then stop")
    parser.add_argument("--max-len", type=int, default=4096, help="largest input libFuzzer generates")
    args, libfuzzer_args = parser.parse_known_args()
    tally = Tally(args.iterations)

    def test_one_input(data: bytes) -> None:
        try:
            exercise(data)
        except Exception as exc:  # noqa: BLE001  (every other exception type is what we hunt for)
            tally.crash(data, exc)
        tally.done += 1
        if tally.done % 100_000 == 0:
            tally.report()
        if tally.done >= tally.iterations:
            tally.report()
            sys.stdout.flush()
            # libFuzzer treats a Python exit as a crash of the target: leave at once instead
            os._exit(1 if tally.crashes else 0)

    artifacts = tempfile.mkdtemp(prefix="cansync-fuzz-")  # libFuzzer writes crash inputs here, not in the cwd
    argv = [sys.argv[0], f"-runs={args.iterations + 10}", f"-max_len={args.max_len}", f"-artifact_prefix={artifacts}/"]
    argv += libfuzzer_args
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    tally.report()  # reached only if libFuzzer stopped early
    return 1 if tally.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
