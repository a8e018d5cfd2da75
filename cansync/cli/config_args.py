"""The flags every command that reads the agent's data shares: -c config.yaml and its overrides."""

from __future__ import annotations

import argparse
from typing import Any

from cansync.config import Config, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="config.yaml", help="the agent's config file")
    parser.add_argument("--passphrase", dest="sync_passphrase", help="sync_passphrase (same on every machine)")
    parser.add_argument("--data-dir", dest="data_dir", help="data_dir: journal, node key, embedded store")
    parser.add_argument("--can-service-url", dest="can_service_url", help="can_service_url of the local store")
    parser.add_argument("--sync-api-key", dest="sync_api_key", help="sync_api_key of the local store")
    parser.add_argument("--bind-addr", dest="bind_addr", help="bind_addr of the iroh endpoint (host:port)")
    parser.add_argument("--ticket-file", dest="ticket_file", help="write this node's address here")
    parser.add_argument("--connect-ticket-file", dest="connect_ticket_file", help="dial the peer in this file")
    parser.add_argument("--store-port", dest="store_port", type=int, help="port of the embedded store")
    parser.add_argument("--web-addr", dest="web_addr", help="web_addr of the dashboard (host:port; '' turns it off)")
    parser.add_argument("--web-token", dest="web_token", help="web_token the dashboard and its API require")
    parser.add_argument("--max-send-kbps", dest="max_send_kbps", type=int, help="max_send_kbps (KiB/s; 0 = unlimited)")
    parser.add_argument("--max-recv-kbps", dest="max_recv_kbps", type=int, help="max_recv_kbps (KiB/s; 0 = unlimited)")
    parser.add_argument("--log-format", dest="log_format", choices=["text", "json"], help="log_format: text or json")


OVERRIDE_KEYS = (
    "sync_passphrase",
    "data_dir",
    "can_service_url",
    "sync_api_key",
    "bind_addr",
    "ticket_file",
    "connect_ticket_file",
    "store_port",
    "web_addr",
    "web_token",
    "max_send_kbps",
    "max_recv_kbps",
    "log_format",
)


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {k: getattr(args, k, None) for k in OVERRIDE_KEYS}
    return load_config(getattr(args, "config", None), overrides)
