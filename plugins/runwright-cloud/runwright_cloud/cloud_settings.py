"""The ``[cloud]`` configuration table, read once per flow run and carried in the run context.

Keys (``RUNWRIGHT__CLOUD__<KEY>`` overrides each one):

- ``api``: the server's root URL; empty means the embedded server on this machine,
  ``http://127.0.0.1:<[server] port>`` (4200 by default), which is started when needed;
- ``api_token``: bearer token; empty means the token kept in ``~/.runwright/cloud-token``
  for the embedded server;
- ``result_handler``: the default result handler of cloud runs (``"cloud"``);
- ``checkpointing``: store every successful task's result, so a resumed run can feed
  downstream tasks (``true``);
- ``heartbeat_interval``: seconds between heartbeats of running flow and task runs (30);
- ``zombie_timeout``: a task run left ``Running`` whose last heartbeat is older than this is
  taken over on resume (120, the server's sweeper default);
- ``batch_size``: most task-run state writes sent in one request (2000; the server takes up
  to 10,000);
- ``batch_linger``: seconds the writer waits for more writes before it sends a batch smaller
  than ``batch_size`` (0.002); a flush sends at once;
- ``task_claims``: ``"lease"`` (the default): the flow run's claim to Running is synchronous
  and gives this runner the flow run's lease, and its task runs' claims to Running are
  queued and sent in batches that the server applies only while the lease is still this
  runner's; ``"sync"``: every task run's claim to Running is a synchronous, version-checked
  request (several runners may then share one flow run);
- ``auto_start``: start the embedded server when nothing answers at its address (``true``);
- ``outage_tolerance``: seconds a task-run or flow-run state write made during a run keeps
  being retried while the server is unreachable or answers 5xx (60): a server restarted
  within that time costs the run a pause, not a stop. Keep it below ``zombie_timeout``.
- ``log_queue_size``: most log records of a process waiting to be shipped to the server
  (10000); a record arriving while they wait is dropped and counted, and the run's logs say
  how many (see :mod:`runwright_cloud.log_shipping`).

The settings object is plain, frozen data: it travels in the run context to thread and Dask
workers, which therefore never need the configuration of the process that started the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "api": "",
    "api_token": "",
    "result_handler": "cloud",
    "checkpointing": True,
    "heartbeat_interval": 30.0,
    "zombie_timeout": 120.0,
    "batch_size": 2000,
    "batch_linger": 0.002,
    "task_claims": "lease",
    "auto_start": True,
    "outage_tolerance": 60.0,
    "log_queue_size": 10_000,
}
TASK_CLAIMS = ("lease", "sync")
DEFAULT_SERVER_PORT = 4200


def runwright_home() -> Path:
    """``~/.runwright``: the embedded server's database, log, pid file and token live here."""
    return Path.home() / ".runwright"


def token_path() -> Path:
    return runwright_home() / "cloud-token"


def embedded_api() -> str:
    """The embedded server's address: 127.0.0.1 and ``[server] port`` (4200)."""
    from runwright_cloud._config import config_value

    return f"http://127.0.0.1:{int(config_value('server', 'port', DEFAULT_SERVER_PORT))}"


@dataclass(frozen=True)
class CloudSettings:
    """The ``[cloud]`` table of one flow run (see the module docstring)."""

    api: str
    api_token: str | None
    result_handler: str
    checkpointing: bool
    heartbeat_interval: float
    zombie_timeout: float
    batch_size: int
    auto_start: bool
    #: True when ``api`` is the embedded server's address (auto-start is allowed).
    embedded: bool
    #: The process that runs the flow (task runs elsewhere wait for their own writes).
    owner_pid: int
    batch_linger: float = 0.002
    task_claims: str = "lease"
    outage_tolerance: float = 60.0
    log_queue_size: int = 10_000

    @property
    def leased(self) -> bool:
        """Task claims go through the flow run's lease (``task_claims = "lease"``)."""
        return self.task_claims == "lease"

    def __repr__(self) -> str:  # never print the token
        return f"CloudSettings(api={self.api!r}, embedded={self.embedded})"

    def with_token(self, token: str) -> CloudSettings:
        return replace(self, api_token=token)


#: the most state writes a runwright server takes in one request
MAX_BATCH_SIZE = 10_000


def load_settings() -> CloudSettings:
    """Read ``[cloud]`` from the configuration; an unknown key is a ConfigError naming it."""
    from runwright.config import ConfigError, get_config

    given = get_config().section("cloud")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(unknown)} in [cloud]; accepted keys: {', '.join(sorted(DEFAULTS))}"
        )
    values = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    embedded = embedded_api()
    api = str(values["api"] or embedded).rstrip("/")
    token = str(values["api_token"] or "") or None
    claims = str(values["task_claims"])
    batch_size = values["batch_size"]
    if isinstance(batch_size, int) and batch_size > MAX_BATCH_SIZE:
        raise ConfigError(
            f"Invalid [cloud] batch_size {batch_size}: a runwright server takes at most {MAX_BATCH_SIZE:,} "
            "state writes per request; set batch_size to at most that"
        )
    if claims not in TASK_CLAIMS:
        raise ConfigError(f"Invalid [cloud] task_claims {claims!r}: expected one of {', '.join(TASK_CLAIMS)}")
    try:
        return CloudSettings(
            api=api,
            api_token=token,
            result_handler=str(values["result_handler"]),
            checkpointing=bool(values["checkpointing"]),
            heartbeat_interval=float(values["heartbeat_interval"]),
            zombie_timeout=float(values["zombie_timeout"]),
            batch_size=max(1, int(values["batch_size"])),
            auto_start=bool(values["auto_start"]),
            embedded=api == embedded,
            owner_pid=os.getpid(),
            batch_linger=max(0.0, float(values["batch_linger"])),
            task_claims=claims,
            outage_tolerance=max(0.0, float(values["outage_tolerance"])),
            log_queue_size=max(1, int(values["log_queue_size"])),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid value in [cloud]: {exc}") from exc
