"""Flow-run processes of an agent: one per claimed run.

Each is ``python -m runwright_cloud.agent.child SPEC`` in its own session (so it is killed
as a process group, children included, and a SIGTERM to the agent is not passed on), with
``PR_SET_PDEATHSIG`` on Linux: when the agent dies (SIGKILL, a lost machine) its flow-run
processes die with it, their runs' heartbeats stop and the server hands the runs to another
agent. Output goes to a log file per run under the agent's log directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: how much of a failed process's output its run's Failed message carries
TAIL_CHARS = 4000


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the agent dies (Linux ``prctl``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


class FlowRunProcess:
    """One claimed run's process."""

    def __init__(self, flow_run_id: str, spec: Mapping[str, Any], env: Mapping[str, str], log_dir: Path) -> None:
        self.flow_run_id = flow_run_id
        self.log_path = log_dir / f"{flow_run_id}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runwright_cloud.agent.child", json.dumps(dict(spec))],
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_die_with_parent,
            )
        self.started = time.monotonic()
        #: when the agent learned that the run was cancelled (None: not cancelled)
        self.cancel_seen: float | None = None
        self.killed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL its process group (the flow-run process and whatever it started)."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
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
