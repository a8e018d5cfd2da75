"""Where the machine's commands go: to the session of the peer they name, or to the store's workers.

The ledger calls `dispatch` (never awaiting) with every command it folds. A command for a peer that has
no session is dropped: the machine derives it again when that peer authenticates, and whatever such a
command was about (a request, a send) is cut off in the state by the peer's disconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cansync.core.commands import (
    Advertise,
    ApplyMetadata,
    Command,
    ForwardMetadata,
    RecordSuperseded,
    RequestAsset,
    SendAsset,
    StoreAsset,
)

if TYPE_CHECKING:
    from cansync.agent.session import PeerSession


class Dispatcher:
    def __init__(self) -> None:
        self.sessions: dict[str, PeerSession] = {}
        self.pushes: asyncio.Queue[StoreAsset] = asyncio.Queue()
        self.metadata: asyncio.Queue[ApplyMetadata] = asyncio.Queue()

    def dispatch(self, commands: Sequence[Command]) -> None:
        for command in commands:
            if isinstance(command, StoreAsset):
                self.pushes.put_nowait(command)
            elif isinstance(command, ApplyMetadata):
                self.metadata.put_nowait(command)
            elif isinstance(command, RecordSuperseded):
                raise TypeError("RecordSuperseded is journaled by the ledger, never dispatched")
            else:
                session = self.sessions.get(command.peer)
                if session is None:
                    continue
                if isinstance(command, RequestAsset):
                    session.want(command.hash, command.offset, command.request_id)
                elif isinstance(command, SendAsset):
                    session.send(command.hash, command.offset, command.request_id)
                elif isinstance(command, Advertise):
                    session.advertise(command.hashes)
                elif isinstance(command, ForwardMetadata):
                    session.forward_metadata(command.hash, command.value)
