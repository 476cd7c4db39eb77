"""Server settings: defaults, then the ``[server]`` config table (or env), then explicit overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runwright_server._config import config_value

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_ZOMBIE_TIMEOUT = 120.0
DEFAULT_SWEEP_INTERVAL = 10.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_JSON_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_TOKEN_CACHE_SECONDS = 5.0
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE_TIMEOUT = 5
DEFAULT_SCHEDULE_AHEAD_RUNS = 10
DEFAULT_SCHEDULE_AHEAD_SECONDS = 3600.0
DEFAULT_LATE_AFTER_SECONDS = 5.0
DEFAULT_SCHEDULER_INTERVAL = 5.0


def default_db_url() -> str:
    """``sqlite:///~/.runwright/server.db`` (expanded)."""
    return f"sqlite:///{Path.home() / '.runwright' / 'server.db'}"


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to run.

    Config keys (table ``[server]``, or ``RUNWRIGHT__SERVER__<KEY>``): ``db``, ``host``,
    ``port``, ``zombie_timeout`` (seconds without heartbeat before a Running run is marked
    Failed), ``sweep_interval`` (seconds between zombie sweeps), ``max_body_bytes`` (the
    body limit of the routes carrying results: ``POST /results`` and ``POST
    /task_run_states``), ``max_json_body_bytes`` (every other route's) and
    ``token_cache_seconds`` (how long a valid API token is remembered in-process, hence the
    longest a revoked token keeps working; 0 checks the database on every request),
    ``header_timeout`` (seconds a connection has to send a whole request line and headers,
    from its opening or its last answer) and ``keep_alive_timeout`` (seconds an idle
    keep-alive connection stays open). The scheduler (:mod:`runwright_server.scheduler`)
    keeps the runs of each deployment's next ``schedule_ahead_runs`` starts within
    ``schedule_ahead_seconds`` created, looking every ``scheduler_interval`` seconds; a
    Scheduled run whose start passed more than ``late_after_seconds`` ago reads ``late``.
    """

    db_url: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    zombie_timeout: float = DEFAULT_ZOMBIE_TIMEOUT
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_body_bytes: int = DEFAULT_MAX_JSON_BODY_BYTES
    token_cache_seconds: float = DEFAULT_TOKEN_CACHE_SECONDS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT
    schedule_ahead_runs: int = DEFAULT_SCHEDULE_AHEAD_RUNS
    schedule_ahead_seconds: float = DEFAULT_SCHEDULE_AHEAD_SECONDS
    late_after_seconds: float = DEFAULT_LATE_AFTER_SECONDS
    scheduler_interval: float = DEFAULT_SCHEDULER_INTERVAL

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {self.port}")
        if self.zombie_timeout <= 0 or self.sweep_interval <= 0:
            raise ValueError("zombie_timeout and sweep_interval must be positive")
        if self.max_body_bytes <= 0 or self.max_json_body_bytes <= 0:
            raise ValueError("max_body_bytes and max_json_body_bytes must be positive")
        if not 0 <= self.token_cache_seconds <= 3600:
            raise ValueError("token_cache_seconds must be between 0 and 3600")
        if self.header_timeout <= 0 or self.keep_alive_timeout <= 0:
            raise ValueError("header_timeout and keep_alive_timeout must be positive")
        if not 1 <= self.schedule_ahead_runs <= 1000:
            raise ValueError("schedule_ahead_runs must be between 1 and 1000")
        if self.schedule_ahead_seconds <= 0 or self.scheduler_interval <= 0 or self.late_after_seconds < 0:
            raise ValueError(
                "schedule_ahead_seconds and scheduler_interval must be positive, late_after_seconds not negative"
            )

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build settings; ``overrides`` (CLI flags) that are not None win over the config."""
        values: dict[str, Any] = {
            "db_url": config_value("server", "db", None) or default_db_url(),
            "host": config_value("server", "host", DEFAULT_HOST),
            "port": int(config_value("server", "port", DEFAULT_PORT)),
            "zombie_timeout": float(config_value("server", "zombie_timeout", DEFAULT_ZOMBIE_TIMEOUT)),
            "sweep_interval": float(config_value("server", "sweep_interval", DEFAULT_SWEEP_INTERVAL)),
            "max_body_bytes": int(config_value("server", "max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
            "max_json_body_bytes": int(
                config_value("server", "max_json_body_bytes", DEFAULT_MAX_JSON_BODY_BYTES)
            ),
            "token_cache_seconds": float(
                config_value("server", "token_cache_seconds", DEFAULT_TOKEN_CACHE_SECONDS)
            ),
            "header_timeout": float(config_value("server", "header_timeout", DEFAULT_HEADER_TIMEOUT)),
            "keep_alive_timeout": int(config_value("server", "keep_alive_timeout", DEFAULT_KEEP_ALIVE_TIMEOUT)),
            "schedule_ahead_runs": int(config_value("server", "schedule_ahead_runs", DEFAULT_SCHEDULE_AHEAD_RUNS)),
            "schedule_ahead_seconds": float(
                config_value("server", "schedule_ahead_seconds", DEFAULT_SCHEDULE_AHEAD_SECONDS)
            ),
            "late_after_seconds": float(config_value("server", "late_after_seconds", DEFAULT_LATE_AFTER_SECONDS)),
            "scheduler_interval": float(config_value("server", "scheduler_interval", DEFAULT_SCHEDULER_INTERVAL)),
        }
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in overrides.items():
            if key not in known:
                raise TypeError(f"unknown setting {key!r}")
            if value is not None:
                values[key] = value
        return cls(**values)
