"""The agent's requests to the server (``/agents``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runwright_cloud.client import Client


@dataclass
class PollAnswer:
    claimed: list[dict[str, Any]] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)


class AgentApi:
    """The agent endpoints, on a client whose timeout outlasts a long poll."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def register(self, name: str, queues: list[str], run_limit: int | None) -> str:
        body = {"name": name, "queues": queues, "run_limit": run_limit}
        return str(self.client._json("POST", "/agents", idempotent=False, json_body=body)["id"])

    def poll(
        self, agent_id: str, queues: list[str], free_slots: int, wait_seconds: float, running: list[str], cancelling: list[str]
    ) -> PollAnswer:
        body = {
            "queues": queues,
            "free_slots": free_slots,
            "wait_seconds": wait_seconds,
            "running": running,
            "cancelling": cancelling,
        }
        answer = self.client._json("POST", f"/agents/{agent_id}/poll", idempotent=False, json_body=body)
        return PollAnswer(list(answer.get("claimed", [])), list(answer.get("cancel", [])))

    def release(self, agent_id: str, flow_run_ids: list[str]) -> list[str]:
        answer = self.client._json(
            "POST", f"/agents/{agent_id}/release", idempotent=True, json_body={"flow_run_ids": flow_run_ids}
        )
        return list(answer.get("released", []))

    def stop(self, agent_id: str) -> None:
        self.client._json("POST", f"/agents/{agent_id}/stop", idempotent=True)
