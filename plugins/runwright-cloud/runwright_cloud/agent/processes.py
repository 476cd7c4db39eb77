"""Flow-run processes of an agent: one per claimed run.

A run's process is forked by the agent's launcher (:mod:`.zygote`, imports done once), or,
while the launcher is not ready (or gone), started afresh as ``python -m
runwright_cloud.agent.child SPEC``. Either way it is in a session of its own (so it is killed
as a process group, children included, and a SIGTERM to the agent is not passed on) and has
``PR_SET_PDEATHSIG`` on Linux: when the agent dies (SIGKILL, a lost machine) its flow-run
processes die with it, their runs' heartbeats stop and the server hands the runs to another
agent. Output goes to a log file per run under the agent's log directory.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("runwright.agent")

#: how much of a failed process's output its run's Failed message carries
TAIL_CHARS = 4000


def die_with_parent() -> None:
    """In a child process: SIGKILL when its parent dies (Linux ``prctl``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class RunProcess:
    """What the agent knows of one claimed run's process."""

    def __init__(self, flow_run_id: str, log_path: Path) -> None:
        self.flow_run_id = flow_run_id
        self.log_path = log_path
        self.started = time.monotonic()
        #: when the agent learned that the run was cancelled (None: not cancelled)
        self.cancel_seen: float | None = None
        self.killed = False

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def exit_code(self) -> int | None:
        """None while it runs."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL its process group (the flow-run process and whatever it started)."""
        pid = self.pid
        if pid is None or self.exit_code() is not None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.killed = True

    def tail(self) -> str:
        """The end of its output (what a load error says)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - TAIL_CHARS))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return text.strip()


class SpawnedRun(RunProcess):
    """A run's process started afresh (``python -m runwright_cloud.agent.child SPEC``)."""

    def __init__(self, flow_run_id: str, spec: Mapping[str, Any], env: Mapping[str, str], log_dir: Path) -> None:
        super().__init__(flow_run_id, log_dir / f"{flow_run_id}.log")
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runwright_cloud.agent.child", json.dumps({"flow_run_id": flow_run_id, **spec})],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def exit_code(self) -> int | None:
        return self.proc.poll()


class ForkedRun(RunProcess):
    """A run's process forked by the launcher; its pid and exit code come as its events."""

    def __init__(self, flow_run_id: str, log_path: Path) -> None:
        super().__init__(flow_run_id, log_path)
        self._pid: int | None = None
        self._code: int | None = None
        self._kill_when_started = False

    @property
    def pid(self) -> int | None:
        return self._pid

    def exit_code(self) -> int | None:
        return self._code

    def kill(self) -> None:
        if self._pid is None:
            self._kill_when_started = True
            self.killed = True
            return
        super().kill()

    def on_started(self, pid: int) -> None:
        self._pid = pid
        if self._kill_when_started:
            super().kill()

    def on_exited(self, code: int) -> None:
        self._code = code


class Launcher:
    """The agent's side of :mod:`.zygote`: starts it, forks runs through it, reads its events
    on a thread (``on_event`` is called after each, to wake the agent)."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, on_event: Callable[[], None]) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir = log_dir
        self.on_event = on_event
        self._runs: dict[str, ForkedRun] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._gone = threading.Event()
        with open(log_dir / "launcher.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runwright_cloud.agent.zygote"],
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                close_fds=True,
                preexec_fn=die_with_parent,
            )
        self._stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        threading.Thread(target=self._read, name="runwright-agent-launcher", daemon=True).start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._gone.is_set()

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def launch(self, flow_run_id: str, spec: Mapping[str, Any]) -> ForkedRun:
        run = ForkedRun(flow_run_id, self.log_dir / f"{flow_run_id}.log")
        with self._lock:
            self._runs[flow_run_id] = run
        line = json.dumps({"flow_run_id": flow_run_id, "spec": dict(spec), "log": str(run.log_path)}) + "\n"
        self._stdin.write(line.encode())
        self._stdin.flush()
        return run

    def close(self) -> None:
        """End of its input: it exits once its children have."""
        try:
            self._stdin.close()
        except OSError:
            pass

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "ready":
                self._ready.set()
                continue
            with self._lock:
                run = self._runs.get(str(event.get("flow_run_id")))
            if run is None:
                continue
            if kind == "started":
                run.on_started(int(event["pid"]))
            elif kind == "exited":
                run.on_exited(int(event["code"]))
                with self._lock:
                    self._runs.pop(run.flow_run_id, None)
            self.on_event()
        # the launcher is gone: its children died with it (PR_SET_PDEATHSIG)
        self._gone.set()
        with self._lock:
            orphans, self._runs = list(self._runs.values()), {}
        for run in orphans:
            run.on_exited(-signal.SIGKILL)
        if orphans or not self._ready.is_set():
            logger.warning("The agent's launcher process ended (see %s)", self.log_dir / "launcher.log")
        self.on_event()
