"""Ticket files (the Rust agent's JSON form and iroh ticket strings) and `cansync ticket`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cansync.cli import main as cli_main
from cansync.net.address import EndpointAddress
from cansync.net.endpoint import PeerEndpoint
from cansync.net.tickets import (
    TicketError,
    address_to_ticket_string,
    parse_ticket,
    read_ticket_file,
    write_ticket_file,
)

ID = "ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6"


def test_json_round_trip_and_exact_rust_layout(tmp_path: Path) -> None:
    address = EndpointAddress(ID, ("127.0.0.1:54321", "[::1]:54322"), "https://relay.example.org./")
    path = tmp_path / "sub" / "ticket.json"
    write_ticket_file(path, address)
    assert json.loads(path.read_text()) == {
        "id": ID,
        "addrs": [{"Ip": "127.0.0.1:54321"}, {"Ip": "[::1]:54322"}],
        "relay_url": "https://relay.example.org./",
    }
    assert read_ticket_file(path) == address
    write_ticket_file(path, EndpointAddress(ID, ("127.0.0.1:1",)))
    assert "relay_url" not in json.loads(path.read_text())
    assert [p.name for p in path.parent.iterdir()] == ["ticket.json"]  # atomic: no temp file left


def test_rust_agent_json_is_parsed() -> None:
    text = json.dumps(
        {
            "id": ID.upper(),
            "addrs": [{"Ip": "192.168.1.20:41641"}, {"Ip": "[fe80::1]:41641"}, {"Relay": "https://r.example/"}],
        },
        separators=(",", ":"),
    )
    address = parse_ticket(text)
    assert address.endpoint_id == ID
    assert address.direct_addrs == ("192.168.1.20:41641", "[fe80::1]:41641")
    assert address.relay_url == "https://r.example/"


async def test_iroh_ticket_string_is_parsed_and_dialable(
    endpoints: tuple[PeerEndpoint, PeerEndpoint], tmp_path: Path
) -> None:
    a, b = endpoints
    ticket = address_to_ticket_string(b.addr())
    assert ticket.startswith("endpoint")
    assert parse_ticket(ticket) == b.addr()
    (tmp_path / "peer.ticket").write_text(ticket + "\n")
    from_file = read_ticket_file(tmp_path / "peer.ticket")
    write_ticket_file(tmp_path / "peer.json", from_file)
    outgoing, incoming = await asyncio.gather(a.connect(read_ticket_file(tmp_path / "peer.json")), b.accept())
    assert outgoing.remote_id_hex == b.id_hex and incoming is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("hello there", "neither a JSON address"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "neither"),
        ('{"addrs": []}', '"id" string'),
        ('{"id": "zz", "addrs": []}', "64 hex"),
        ('{"id": "ID", "addrs": {"Ip": "1.2.3.4:5"}}'.replace("ID", ID), "must be a list"),
        ('{"id": "ID", "addrs": [{"Ip": "1.2.3.4"}]}'.replace("ID", ID), "ip:port"),
        ('{"id": "ID", "addrs": [{"Ip": "not-an-ip:5"}]}'.replace("ID", ID), "not-an-ip"),
        ('{"id": "ID", "addrs": ["1.2.3.4:5"]}'.replace("ID", ID), "kind: value"),
        ("endpointnotreallyaticket", "not a valid iroh ticket"),
    ],
)
def test_garbage_is_refused_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.ticket"
    path.write_text(content)
    with pytest.raises(TicketError) as err:
        read_ticket_file(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(TicketError, match="does not exist"):
        read_ticket_file(tmp_path / "nope.json")


def test_cli_prints_the_ticket_the_agent_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    address = EndpointAddress(ID, ("127.0.0.1:54321",))
    write_ticket_file(tmp_path / "ticket.json", address)
    assert cli_main(["ticket", "--data-dir", str(tmp_path)]) == 0
    json_line, ticket_line = capsys.readouterr().out.splitlines()
    assert json.loads(json_line) == {"id": ID, "addrs": [{"Ip": "127.0.0.1:54321"}]}
    assert parse_ticket(ticket_line) == address
    # an explicit ticket_file wins over data_dir/ticket.json
    write_ticket_file(tmp_path / "custom.json", EndpointAddress(ID, ("127.0.0.1:1",)))
    assert (
        cli_main(
            ["ticket", "--data-dir", str(tmp_path), "--ticket-file", str(tmp_path / "custom.json"), "--format", "json"]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == {"id": ID, "addrs": [{"Ip": "127.0.0.1:1"}]}


def test_cli_without_a_ticket_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["ticket", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "ticket.json") in err and "cansync run" in err
