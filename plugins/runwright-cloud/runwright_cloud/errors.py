"""Errors raised by :class:`runwright_cloud.client.Client`."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A request to the runwright server failed; ``status_code`` is the HTTP status, if any."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthorizationError(ClientError):
    """401: the API token is missing, wrong or revoked."""


class NotFoundError(ClientError):
    """404: the flow, run, task run or result does not exist (or belongs to another tenant)."""


class VersionConflict(ClientError):
    """409: the state write named a version that is no longer current.

    ``current_version`` and ``current_state`` are what the server holds now.
    """

    def __init__(
        self,
        message: str,
        current_version: int | None = None,
        current_state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status_code=409)
        self.current_version = current_version
        self.current_state = current_state


class ServerUnreachable(ClientError):
    """The server could not be reached (refused, reset or timed out) after every retry."""


class ServerError(ClientError):
    """The server answered 5xx after every retry."""


class LeaseLost(VersionConflict):
    """409 for a whole batch: the lease it named is no longer its flow run's lease (another
    runner took the flow run over). Nothing in the batch was applied."""
