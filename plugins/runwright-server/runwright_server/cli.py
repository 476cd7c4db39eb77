"""``runwright server ...``: start the server, stop the embedded one, manage API tokens.

The plugin (:mod:`runwright_server.plugin`) attaches :data:`server_group` to the
``runwright`` command; ``python -m runwright_server`` runs it standalone. Errors are one line
on stderr and exit code 1. Only click is imported here; each command imports what it needs.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(func: F) -> F:
    """Turn expected failures (bad URL, unreachable DB, port in use) into a one-line message."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except ArgumentError as exc:
            raise click.ClickException(f"invalid database URL: {exc}") from None
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(f"database error: {first}") from None
        except (OSError, ValueError, ImportError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _migrated_engine(db: str | None) -> Any:
    from runwright_server import migrate
    from runwright_server.db import make_engine
    from runwright_server.settings import Settings

    settings = Settings.load(db_url=db)
    engine = make_engine(settings.db_url)
    migrate.upgrade(engine)
    return engine


@click.group(name="server")
def server_group() -> None:
    """The runwright backend server."""


@server_group.command("start")
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1, config [server] host).")
@click.option("--port", type=int, default=None, help="Port (default 4200, config [server] port).")
@click.option("--db", default=None, help="SQLAlchemy URL (default sqlite:///~/.runwright/server.db).")
@click.option("--zombie-timeout", type=float, default=None, help="Seconds without heartbeat before a run fails (120).")
@click.option("--sweep-interval", type=float, default=None, help="Seconds between zombie sweeps (10).")
@click.option("--max-body-bytes", type=int, default=None, help="Largest body of POST /results and /task_run_states (64 MiB).")
@click.option("--max-json-body-bytes", type=int, default=None, help="Largest body of the other routes (4 MiB).")
@click.option("--log-level", default="warning", show_default=True, help="uvicorn log level.")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@_one_line_errors
def start(
    host: str | None,
    port: int | None,
    db: str | None,
    zombie_timeout: float | None,
    sweep_interval: float | None,
    max_body_bytes: int | None,
    max_json_body_bytes: int | None,
    log_level: str,
    access_log: bool,
) -> None:
    """Migrate the database to the newest schema, then serve the API."""
    import uvicorn

    from runwright_server import migrate
    from runwright_server.app import create_app
    from runwright_server.connections import protocol_class
    from runwright_server.db import make_engine
    from runwright_server.settings import Settings

    settings = Settings.load(
        db_url=db,
        host=host,
        port=port,
        zombie_timeout=zombie_timeout,
        sweep_interval=sweep_interval,
        max_body_bytes=max_body_bytes,
        max_json_body_bytes=max_json_body_bytes,
    )
    sock = _bind(settings.host, settings.port)
    engine = make_engine(settings.db_url)
    migrate.upgrade(engine)
    app = create_app(settings, engine, own_process=True)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        http=protocol_class(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,
    )
    server = uvicorn.Server(config)
    click.echo(f"runwright server on http://{settings.host}:{settings.port} (db {engine.url!r})", err=True)
    server.run(sockets=[sock])
    if not server.started:
        raise click.ClickException("the server failed to start (see the log above)")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on accepted sockets of
    # such a listener, and without it Nagle + delayed ACK add ~40 ms to keep-alive requests.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@server_group.command("stop")
def stop() -> None:
    """Stop the embedded server started by a cloud run (by its pid file)."""
    from runwright_server import embedded

    pid = embedded.stop()
    if pid is None:
        click.echo(f"No embedded server is running (no live pid in {embedded.pid_path()}).")
    else:
        click.echo(f"Stopped the embedded runwright server (pid {pid}).")


@server_group.group("token")
def token_group() -> None:
    """API tokens (only their sha256 is stored)."""


@token_group.command("create")
@click.option("--name", required=True, help="A label for the token.")
@click.option("--tenant", default="default", show_default=True, help="Tenant; created if new.")
@click.option("--db", default=None, help="SQLAlchemy URL of the server database.")
@_one_line_errors
def token_create(name: str, tenant: str, db: str | None) -> None:
    """Create a token and print it (alone) on stdout. It cannot be shown again."""
    from runwright_server.auth import create_token

    token = create_token(_migrated_engine(db), name=name, tenant=tenant)
    click.echo(token)


@token_group.command("revoke")
@click.argument("token_arg", metavar="[TOKEN|-]", required=False)
@click.option("--name", default=None, help="Revoke the tenant's active tokens with this name.")
@click.option("--tenant", default="default", show_default=True)
@click.option("--token", "token_value", default=None, help="Revoke this token (visible to other users in ps: prefer stdin).")
@click.option("--db", default=None, help="SQLAlchemy URL of the server database.")
@_one_line_errors
def token_revoke(token_arg: str | None, name: str | None, tenant: str, token_value: str | None, db: str | None) -> None:
    """Revoke tokens by name (within a tenant) or one token by its value.

    The token is read from standard input when the argument is ``-``, or when neither a
    name nor a token is given (``echo "$TOKEN" | runwright server token revoke``), so that it
    never appears on a command line.
    """
    from runwright_server.auth import revoke_tokens

    if token_arg is not None and token_arg != "-":
        raise click.UsageError("give the token on standard input (argument '-') or with --token, not as an argument")
    if token_arg == "-" or (name is None and token_value is None):
        if token_value is not None or name is not None:
            raise click.UsageError("give exactly one of --name, --token or the token on standard input")
        if token_arg is None and sys.stdin.isatty():
            raise click.UsageError("give --name, --token, or the token on standard input ('-')")
        token_value = sys.stdin.readline().strip()
        if not token_value:
            raise click.UsageError("no token on standard input")
    if (name is None) == (token_value is None):
        raise click.UsageError("give exactly one of --name, --token or the token on standard input")
    count = revoke_tokens(_migrated_engine(db), name=name, tenant=tenant, token=token_value)
    if count == 0:
        raise click.ClickException("no active token matched")
    click.echo(f"revoked {count} token(s)", err=True)


@token_group.command("list")
@click.option("--db", default=None, help="SQLAlchemy URL of the server database.")
@_one_line_errors
def token_list(db: str | None) -> None:
    """List tokens: tenant, name, created, revoked."""
    from runwright_server.auth import list_tokens

    for tenant, name, created, revoked in list_tokens(_migrated_engine(db)):
        click.echo(f"{tenant}\t{name}\t{created.isoformat()}\t{revoked.isoformat() if revoked else '-'}")


def main(argv: list[str] | None = None) -> None:
    """Standalone entry: ``python -m runwright_server [start] --port ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h")):
        args.insert(0, "start")
    server_group.main(args=args, prog_name="runwright server")
