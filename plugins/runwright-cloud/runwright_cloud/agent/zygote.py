"""The agent's launcher process: ``python -m runwright_cloud.agent.zygote``.

It imports runwright, the cloud runners, the CLI and the plugins once, then forks one child
per claimed run, so a run starts in milliseconds instead of paying a Python start and its
imports (about a second of CPU on a small machine) each time. It is single-threaded and
holds no connection when it forks.

Protocol, JSON lines: the agent writes ``{"flow_run_id", "spec", "log"}`` to its stdin; it
answers on stdout ``{"event": "ready"}`` once, then ``{"event": "started", "flow_run_id",
"pid"}`` and ``{"event": "exited", "flow_run_id", "pid", "code"}`` per run. Each child is in
a session of its own (the agent kills it as a process group) and dies with the launcher
(``PR_SET_PDEATHSIG``), which dies with the agent. End of stdin: it exits once its children
have.
"""

from __future__ import annotations

import json
import os
import random
import select
import sys
import traceback
from typing import Any, TextIO

from runwright_cloud.agent.processes import die_with_parent


def preload() -> None:
    """Everything a flow-run process imports, and the plugin manager, built once."""
    import requests  # noqa: F401

    import runwright.cli
    import runwright_cloud.reporting.flow_runs
    import runwright_cloud.reporting.task_runs  # noqa: F401
    from runwright.plugins.process import get_plugin_manager
    from runwright_cloud.agent import child  # noqa: F401

    runwright.cli.build_cli()
    get_plugin_manager().lookup("storages", "server")


def _write(out: TextIO, event: dict[str, Any]) -> None:
    out.write(json.dumps(event) + "\n")
    out.flush()


def _run_child(request: dict[str, Any]) -> int:
    """In the forked child: its own session, its log as stdout and stderr, then the run."""
    os.setsid()
    die_with_parent()
    random.seed()  # not the launcher's sequence, shared by every child
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(devnull)
    from runwright_cloud.agent.child import main as child_main

    return child_main([json.dumps({"flow_run_id": request["flow_run_id"], **request["spec"]})])


def _fork(request: dict[str, Any], out: TextIO) -> tuple[int, str] | None:
    run_id = str(request["flow_run_id"])
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        _write(out, {"event": "exited", "flow_run_id": run_id, "pid": None, "code": -1, "error": str(exc)})
        return None
    if pid == 0:
        code = 1
        try:
            code = _run_child(request)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child's output says what went wrong
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)
    _write(out, {"event": "started", "flow_run_id": run_id, "pid": pid})
    return pid, run_id


def main() -> int:
    out = sys.stdout
    preload()
    _write(out, {"event": "ready"})
    stdin = sys.stdin.fileno()
    children: dict[int, str] = {}
    pending = b""
    open_input = True
    while open_input or children:
        readable: list[int] = []
        if open_input:
            readable, _, _ = select.select([stdin], [], [], 0.01 if children else 0.5)
        else:
            select.select([], [], [], 0.01)
        if readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                open_input = False
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    forked = _fork(json.loads(line), out)
                    if forked is not None:
                        children[forked[0]] = forked[1]
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            run_id = children.pop(pid, None)
            if run_id is not None:
                _write(out, {"event": "exited", "flow_run_id": run_id, "pid": pid, "code": os.waitstatus_to_exitcode(status)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
