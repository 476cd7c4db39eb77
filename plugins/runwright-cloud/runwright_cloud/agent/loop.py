"""The agent: a poll thread that long-polls the server, and the main thread that starts,
watches, cancels and reaps the flow-run processes.

* Runs are forked by the agent's launcher process (imports done once, :mod:`.zygote`), or
  started as a fresh Python while it is not ready.
* The poll thread holds one long poll at a time (``wait_seconds`` 30 when idle): the server
  answers the moment a run is due or one of the agent's runs is cancelled. The server counts
  the agent's Submitted and Running runs against its ``--limit``, so a run that ends frees its
  slot at once, without a new poll. Each poll is the agent's heartbeat.
* Server unreachable (a restart): one log line, then polls again with a backoff (0.2 s
  doubling to 2 s); one log line when it is back. An agent the server no longer knows
  registers again.
* A cancel: the agent waits :data:`KILL_GRACE` seconds for the run's own runner to stop,
  then kills the process group, and records ``Cancelled``.
* A process that ended before its run started (its code could not be fetched or loaded), or
  that died while running: the run is recorded ``Failed`` with the end of its output.
* SIGTERM (or SIGINT): no new work; runs claimed but not started yet are handed back
  (``release``); running ones finish; then ``stop`` and exit 0.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from runwright_cloud.agent.api import AgentApi, PollAnswer
from runwright_cloud.agent.processes import Launcher, RunProcess, SpawnedRun
from runwright_cloud.client import Client
from runwright_cloud.errors import ClientError, NotFoundError, ServerUnreachable, VersionConflict

logger = logging.getLogger("runwright.agent")

#: seconds the run's runner has to stop by itself after the agent learned of a cancel
KILL_GRACE = 0.5
POLL_WAIT = 30.0
#: a poll while stopping (only cancels matter then)
STOPPING_POLL_WAIT = 1.0
BACKOFF_START = 0.2
BACKOFF_MAX = 2.0
#: how often the main thread looks at its processes
TICK = 0.05
NO_LIMIT_SLOTS = 1000
#: how often the launcher is started again after it died
MAX_LAUNCHER_STARTS = 3


class Agent:
    """``runwright agent start``: see the module docstring."""

    def __init__(
        self,
        client: Client,
        name: str | None = None,
        queues: list[str] | None = None,
        limit: int | None = None,
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.api = AgentApi(client)
        self.client = client
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.queues = list(queues or ["default"])
        self.limit = limit
        self.log_dir = log_dir or Path.home() / ".runwright" / "agent" / "logs"
        self.env = env if env is not None else child_env(client)
        self.agent_id: str | None = None
        self.processes: dict[str, RunProcess] = {}
        self.launcher: Launcher | None = None
        self._launcher_starts = 0
        self._answers: queue.Queue[PollAnswer] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._finished = threading.Event()

    # -- the main thread ---------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`); return the exit code (0)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_stop())
        self._start_launcher()  # it imports while the agent registers
        agent_id = self._register()
        if agent_id is None:  # stopped before the server ever answered
            if self.launcher is not None:
                self.launcher.close()
            return 0
        self.agent_id = agent_id
        limit = "no limit" if self.limit is None else f"at most {self.limit} at once"
        logger.info("Agent %s (%s) takes runs of queue(s) %s, %s", self.name, self.agent_id, ", ".join(self.queues), limit)
        poller = threading.Thread(target=self._poll_loop, name="runwright-agent-poll", daemon=True)
        poller.start()
        while not (self._stopping.is_set() and not self.processes):
            self._wake.wait(TICK)
            self._wake.clear()
            self._take_answers()
            self._watch_processes()
        self._finished.set()
        self._take_answers()  # runs claimed by the last poll go back
        if self.launcher is not None:
            self.launcher.close()
        try:
            self.api.stop(self.agent_id)
        except ClientError as exc:
            logger.warning("Could not tell the server that agent %s stopped: %s", self.name, exc)
        logger.info("Agent %s stopped", self.name)
        return 0

    def request_stop(self) -> None:
        if not self._stopping.is_set():
            logger.info("Agent %s stopping: no new runs; waiting for %d running", self.name, len(self.processes))
        self._stopping.set()
        self._wake.set()

    def _register(self) -> str | None:
        """Register, retrying while the server is unreachable; None when stopped meanwhile."""
        backoff = BACKOFF_START
        warned = False
        while True:
            try:
                return self.api.register(self.name, self.queues, self.limit)
            except ServerUnreachable as exc:
                if self._stopping.is_set():
                    return None
                if not warned:
                    logger.warning("%s; retrying until it answers", exc)
                    warned = True
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _take_answers(self) -> None:
        while True:
            try:
                answer = self._answers.get_nowait()
            except queue.Empty:
                return
            now = time.monotonic()
            for run_id in answer.cancel:
                process = self.processes.get(run_id)
                if process is None:  # nothing of it runs here (any more): its cancel is done
                    self._record_cancelled(run_id, "no process of its agent was running it")
                elif process.cancel_seen is None:
                    logger.info("Flow run %s was cancelled: stopping its process (pid %s)", run_id, process.pid)
                    process.cancel_seen = now
            unstarted = []
            for claimed in answer.claimed:
                run_id = claimed["flow_run"]["id"]
                if self._stopping.is_set() or run_id in self.processes:
                    unstarted.append(run_id)
                else:
                    self._start(claimed)
            if unstarted:
                self._release(unstarted)

    def _start_launcher(self) -> None:
        if self._launcher_starts >= MAX_LAUNCHER_STARTS:
            return  # it keeps dying: every run starts a fresh Python instead
        self._launcher_starts += 1
        try:
            self.launcher = Launcher(self.env, self.log_dir, self._wake.set)
        except OSError as exc:
            logger.warning("Could not start the agent's launcher (runs start a fresh Python each): %s", exc)
            self.launcher = None

    def _start(self, claimed: dict[str, Any]) -> None:
        run = claimed["flow_run"]
        deployment = claimed.get("deployment")
        spec = {"deployment": deployment}
        if self.launcher is not None and self.launcher.gone:
            self._start_launcher()
        process: RunProcess
        try:
            if self.launcher is not None and self.launcher.ready:
                process = self.launcher.launch(run["id"], spec)
            else:
                process = SpawnedRun(run["id"], spec, self.env, self.log_dir)
        except OSError as exc:
            self._fail(run["id"], f"The agent could not start a process for the run: {exc}")
            return
        self.processes[run["id"]] = process
        where = f"deployment {deployment['name']!r}" if deployment else "no deployment"
        logger.info("Flow run %s (%s): started", run["id"], where)

    def _release(self, run_ids: list[str]) -> None:
        assert self.agent_id is not None
        try:
            released = self.api.release(self.agent_id, run_ids)
            logger.info("Handed back %d claimed run(s) that had not started", len(released))
        except ClientError as exc:
            logger.warning("Could not hand back runs %s (the server gives them to another agent later): %s", run_ids, exc)

    def _watch_processes(self) -> None:
        now = time.monotonic()
        for run_id, process in list(self.processes.items()):
            code = process.exit_code()
            if code is None:
                if process.cancel_seen is not None and not process.killed and now - process.cancel_seen >= KILL_GRACE:
                    process.kill()  # its exit shows at the next look
                continue
            del self.processes[run_id]
            self._ended(process, code)
            self._wake.set()  # a slot is free: the poll thread may poll again

    def _ended(self, process: RunProcess, code: int) -> None:
        run_id = process.flow_run_id
        if process.cancel_seen is not None:
            how = "its agent killed the flow-run process" if process.killed else "its flow-run process stopped"
            self._record_cancelled(run_id, how)
            return
        try:
            info = self.client.get_flow_run_info(run_id)
        except ClientError as exc:
            logger.warning("Flow run %s: process %s exited with %d; the server did not say how the run ended: %s", run_id, process.pid, code, exc)
            return
        state = str(info.serialized_state.get("type"))
        held_by_it = (info.lease_holder or "").rpartition(":")[2] == str(process.pid)
        if info.agent_id != self.agent_id:
            logger.info("Flow run %s: %s, no longer this agent's (process %s exited with %d)", run_id, state, process.pid, code)
        elif state == "Submitted":
            message = f"The flow run's code could not be loaded (its process exited with {code}): {process.tail()}"
            self._fail(run_id, message, info.version)
        elif state == "Running" and code != 0 and held_by_it:
            message = f"The flow-run process exited with {code} while the run was Running: {process.tail()}"
            self._fail(run_id, message, info.version)
        else:
            logger.info("Flow run %s: %s (process %s exited with %d)", run_id, state, process.pid, code)

    def _record_cancelled(self, run_id: str, how: str) -> None:
        from runwright_cloud.run_control import mark_cancelled

        try:
            mark_cancelled(self.client, run_id, f"Cancelled while running (runwright runs cancel): {how}")
            logger.info("Flow run %s: Cancelled (%s)", run_id, how)
        except ClientError as exc:
            logger.warning("Flow run %s was stopped for its cancel, but recording Cancelled failed: %s", run_id, exc)

    def _fail(self, run_id: str, message: str, version: int | None = None) -> None:
        logger.error("Flow run %s: Failed: %s", run_id, message)
        try:
            if version is None:
                version = self.client.get_flow_run_info(run_id).version
            self.client.set_flow_run_state(run_id, version, {"type": "Failed", "message": message[:16_000]})
        except VersionConflict:
            pass  # the run moved on meanwhile (cancelled, taken over): its state stands
        except ClientError as exc:
            logger.warning("Could not record flow run %s Failed: %s", run_id, exc)

    # -- the poll thread ---------------------------------------------------------------------
    def _poll_loop(self) -> None:
        backoff = BACKOFF_START
        down_since: float | None = None
        while not self._finished.is_set():
            assert self.agent_id is not None
            stopping = self._stopping.is_set()
            processes = dict(self.processes)
            running = [run_id for run_id, p in processes.items() if p.cancel_seen is None]
            cancelling = [run_id for run_id, p in processes.items() if p.cancel_seen is not None]
            free = 0 if stopping else (NO_LIMIT_SLOTS if self.limit is None else self.limit)
            wait = STOPPING_POLL_WAIT if stopping else POLL_WAIT
            if down_since is not None:
                wait = 0.0  # after an outage: a quick look first, which tells that the server is back
            try:
                answer = self.api.poll(self.agent_id, self.queues, free, wait, running, cancelling)
            except NotFoundError:
                logger.warning("The server does not know agent %s (its database was replaced?): registering again", self.name)
                self.agent_id = self._register() or self.agent_id
                continue
            except ClientError as exc:
                if self._finished.is_set():
                    return
                if down_since is None:
                    down_since = time.monotonic()
                    logger.warning("Lost the runwright server (%s); reconnecting", exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            if down_since is not None:
                logger.info("Reconnected to the runwright server after %.1f s", time.monotonic() - down_since)
                down_since = None
            backoff = BACKOFF_START
            if answer.claimed or answer.cancel:
                self._answers.put(answer)
                self._wake.set()


def child_env(client: Client) -> dict[str, str]:
    """The environment of the flow-run processes: the agent's, pointed at its server."""
    env = dict(os.environ)
    env["RUNWRIGHT__CLOUD__API"] = client.api
    if client.api_token:
        env["RUNWRIGHT__CLOUD__API_TOKEN"] = client.api_token
    env["RUNWRIGHT__CLOUD__AUTO_START"] = "false"
    return env
