"""Run control through the server: cancel a flow run, record that it stopped, retry it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runwright_cloud.client import Client


def cancel_flow_run(client: Client, flow_run_id: str) -> dict[str, Any]:
    """``{"id", "state", "cancel_requested"}``: ``state`` is ``Cancelled`` when the run had
    not started, ``Running`` when its runner and agent were asked to stop it. A finished run
    raises :class:`~runwright_cloud.errors.VersionConflict` (409) naming its state."""
    answer: dict[str, Any] = client._json("POST", f"/flow_runs/{flow_run_id}/cancel", idempotent=True)
    return answer


def mark_cancelled(client: Client, flow_run_id: str, message: str) -> dict[str, Any]:
    """Record that the run whose cancel was requested stopped (it and its unfinished task
    runs end Cancelled); idempotent."""
    answer: dict[str, Any] = client._json(
        "POST", f"/flow_runs/{flow_run_id}/cancelled", idempotent=True, json_body={"message": message[:10_000]}
    )
    return answer


def retry_flow_run(client: Client, flow_run_id: str) -> dict[str, Any]:
    """A finished run back to Scheduled; its task runs that did not succeed Pending."""
    answer: dict[str, Any] = client._json("POST", f"/flow_runs/{flow_run_id}/retry", idempotent=True)
    return answer
