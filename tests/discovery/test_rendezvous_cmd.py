"""`cansync rendezvous` as a real process against the npm relay."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from cansync.discovery.rendezvous import slot_keys
from tests.discovery.conftest import NpmRelay
from tests.discovery.rendezvous_helpers import make_peer, new_passphrase
from tests.discovery.test_relay_client_policy import closed_port_url

CANSYNC = str(Path(sys.executable).parent / "cansync")


async def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANSYNC_")}
    proc = await asyncio.create_subprocess_exec(
        CANSYNC, "rendezvous", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_json_shows_the_slot_held_by_a_publisher(npm_relay: NpmRelay) -> None:
    passphrase = new_passphrase()
    publisher = make_peer(passphrase, [npm_relay.url])
    async with publisher.rendezvous as rendezvous:
        held = await rendezvous.publish_once()
    assert held is not None
    code, out, err = await run_cli("--passphrase", passphrase, "--relay", npm_relay.url, "--json")
    assert code == 0, err
    assert passphrase not in out + err
    report = json.loads(out)
    assert report["relays"] == [npm_relay.url]
    assert [s["index"] for s in report["slots"]] == list(range(8))
    for slot in report["slots"]:
        assert len(slot["public_key"]) == 52
        [answer] = slot["relays"]
        if slot["index"] == held:
            assert answer["status"] == "found" and answer["endpoint_id"] == publisher.id
            assert 0 <= answer["age_seconds"] < 60 and answer["fresh"] is True
        else:
            assert (answer["status"], answer["http_status"]) == ("empty", 404)


async def test_table_output_and_an_unreachable_relay(npm_relay: NpmRelay) -> None:
    passphrase = new_passphrase()
    publisher = make_peer(passphrase, [npm_relay.url])
    async with publisher.rendezvous as rendezvous:
        held = await rendezvous.publish_once()
    dead = closed_port_url()
    code, out, err = await run_cli("--passphrase", passphrase, "--relay", npm_relay.url, "--relay", dead)
    assert code == 0, err
    assert passphrase not in out + err
    assert out.count("empty (404)") == 7
    assert out.count(f"{dead}: unreachable: cannot connect") == 8
    assert f"{npm_relay.url}: {publisher.id}, " in out
    assert f"slot {held}  pk:" in out

    code, out, _err = await run_cli("--passphrase", passphrase, "--relay", dead, "--json")
    assert code == 1  # no relay answered at all
    assert {a["status"] for s in json.loads(out)["slots"] for a in s["relays"]} == {"unreachable"}


async def test_relays_and_passphrase_come_from_the_config(npm_relay: NpmRelay, tmp_path: Path) -> None:
    passphrase = new_passphrase()
    publisher = make_peer(passphrase, [npm_relay.url])
    async with publisher.rendezvous as rendezvous:
        held = await rendezvous.publish_once()
    config = tmp_path / "config.yaml"
    config.write_text(f"sync_passphrase: {passphrase}\npkarr_relays:\n  - {npm_relay.url}\n")
    code, out, err = await run_cli("-c", str(config), "--json", cwd=tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert report["relays"] == [npm_relay.url]
    assert report["slots"][held]["relays"][0]["endpoint_id"] == publisher.id

    code, _out, err = await run_cli("--json", cwd=tmp_path)
    assert code == 2 and "sync_passphrase is not set" in err


async def test_no_relay_configured_still_prints_the_slot_keys(tmp_path: Path) -> None:
    passphrase = new_passphrase()
    config = tmp_path / "config.yaml"
    config.write_text("pkarr_relays: []\n")
    code, out, err = await run_cli("-c", str(config), "--passphrase", passphrase, cwd=tmp_path)
    assert code == 0, err
    assert passphrase not in out + err
    keys = slot_keys(passphrase)
    assert [line for line in out.splitlines() if line.startswith("slot ")] == [
        f"slot {k.index}  pk:{k.z32}" for k in keys
    ]
    assert "no relay was read" in out and "no relay was read" in err

    code, out, err = await run_cli("-c", str(config), "--passphrase", passphrase, "--json", cwd=tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert report["relays"] == [] and "no relay was read" in report["note"]
    assert [(s["index"], s["public_key"], s["relays"]) for s in report["slots"]] == [(k.index, k.z32, []) for k in keys]
