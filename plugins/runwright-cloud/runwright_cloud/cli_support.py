"""What the cloud commands share: one-line errors and the configured server's client."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(func: F) -> F:
    """Server unreachable, wrong token, unknown run: one line, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from runwright_cloud.errors import ClientError, NotFoundError

        try:
            return func(*args, **kwargs)
        except NotFoundError as exc:
            raise click.ClickException(f"Not found on the runwright server: {exc}") from None
        except ClientError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def configured_client(start: bool = True) -> Any:
    """The client of the configured server; ``start=False`` (read-only commands) never starts
    the embedded server (a one-line error says how to start one)."""
    from runwright_cloud import embedded
    from runwright_cloud.cloud_settings import load_settings
    from runwright_cloud.connection import shared_client

    settings = embedded.prepare(load_settings(), start=start)
    return shared_client(settings.api, settings.api_token)
