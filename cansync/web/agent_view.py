"""The running agent as the web layer sees it: an AgentView that reads the agent and never decides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cansync.web.journal_rows import journal_rows
from cansync.web.recent_errors import RecentErrors
from cansync.web.state_status import status_from_state

if TYPE_CHECKING:
    from cansync.agent.runtime import Agent


class AgentStatusView:
    def __init__(self, agent: Agent, errors: RecentErrors | None = None) -> None:
        self._agent = agent
        self._errors = errors

    def status(self) -> dict[str, Any]:
        agent = self._agent
        state = agent.ledger.state
        status = status_from_state(
            state,
            endpoint_id=agent.our_id,
            started_ms=agent.started_ms,
            store_url=agent.store_url,
            store_reachable=agent.feed.reachable,
            in_session=set(agent.sessions),
            paused=agent.paused_peers(),
            errors=self._errors.entries() if self._errors is not None else (),
            rates=agent.rates(),
            failures=dict(state.failures),
        )
        status["sessions"] = len(agent.sessions)
        return status

    async def journal_rows(
        self, *, hash_prefix: str | None, peer: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return await journal_rows(self._agent.journal, hash_prefix=hash_prefix, peer=peer, kind=kind, limit=limit)

    async def set_paused(self, peer: str, paused: bool) -> None:
        await self._agent.set_paused(peer, paused)
