"""The installed protobuf modules are exactly what protoc makes from proto/ (nobody edited them, and
nobody forgot to regenerate after editing a .proto)."""

from __future__ import annotations

from pathlib import Path

import cansync.wire.pb as installed_pb
from cansync_build import generate

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"


def test_generated_modules_match_the_proto_sources(tmp_path: Path) -> None:
    generated = generate(PROTO_DIR, tmp_path / "pb")
    installed_dir = Path(installed_pb.__file__).parent
    assert {p.name for p in generated} == {
        f"{src.stem}{suffix}" for src in PROTO_DIR.glob("*.proto") for suffix in ("_pb2.py", "_pb2.pyi")
    }
    for fresh in generated:
        installed = installed_dir / fresh.name
        assert installed.exists(), f"{installed} is missing: run `.venv/bin/pip install -e .`"
        assert installed.read_text() == fresh.read_text(), (
            f"{installed} differs from what protoc makes of proto/{fresh.name.split('_pb2')[0]}.proto: "
            "regenerate with `.venv/bin/pip install -e .`"
        )


def test_messages_the_peer_protocol_imports_exist() -> None:
    from cansync.wire.pb import can_sync_pb2, peer_pb2

    for name in (
        "AssetMeta",
        "AssetDigest",
        "HashesRequest",
        "HashesResponse",
        "PullRequest",
        "PullItem",
        "PushResult",
        "MetaUpdate",
        "MetaResult",
    ):
        assert hasattr(can_sync_pb2, name), name
    header = peer_pb2.AssetHeader(meta=can_sync_pb2.AssetMeta(hash="ab", size=3))
    assert peer_pb2.AssetHeader.FromString(header.SerializeToString()).meta.size == 3
