"""What tasks log reaches the console: the run logger, ``[logging]``, -q/-v, tracebacks."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pyte
import pytest

import runwright
from runwright import Flow, task

FLOW = textwrap.dedent(
    """
    import time

    import runwright
    from runwright import Flow, task

    @task
    def greet():
        time.sleep(0.6)  # the live progress display is on screen by now
        runwright.get_run_logger().info("hello from the task")
        runwright.get_run_logger().debug("a debug detail")
        runwright.context.get("logger").warning("the seed's context logger works too")
        return 1

    @task
    def explode(x):
        raise ValueError("the user's own bug")

    with Flow("logging-flow") as flow:
        explode(greet())

    if __name__ == "__main__":
        flow.run()
    """
)


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "logging_flow.py"
    path.write_text(FLOW)
    return path


def run(args: list[str], tmp_path: Path, config: str = "") -> subprocess.CompletedProcess[str]:
    config_path = tmp_path / "config.toml"
    config_path.write_text(config)
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(config_path)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


def test_a_plain_script_shows_what_its_tasks_log(flow_file: Path, tmp_path: Path) -> None:
    proc = run([sys.executable, str(flow_file)], tmp_path)
    assert "INFO - runwright.Task: greet | hello from the task" in proc.stderr
    assert "WARNING - runwright.Task: greet | the seed's context logger works too" in proc.stderr
    assert "a debug detail" not in proc.stderr


def test_a_failed_task_logs_its_whole_traceback_at_error(flow_file: Path, tmp_path: Path) -> None:
    proc = run([sys.executable, "-m", "runwright.cli", "run", str(flow_file)], tmp_path)
    assert proc.returncode == 1
    error_line = next(line for line in proc.stderr.splitlines() if " ERROR - " in line)
    assert "Task 'explode'" in error_line and "the user's own bug" in error_line
    assert "Traceback (most recent call last):" in proc.stderr
    assert 'raise ValueError("the user\'s own bug")' in proc.stderr  # the user's own line


def test_logging_level_and_format_come_from_the_configuration(flow_file: Path, tmp_path: Path) -> None:
    config = '[logging]\nlevel = "DEBUG"\nformat = "LOG %(levelname)s %(message)s"\n'
    proc = run([sys.executable, str(flow_file)], tmp_path, config)
    assert "LOG DEBUG a debug detail" in proc.stderr
    assert "LOG INFO hello from the task" in proc.stderr


def test_quiet_and_verbose_flags_override_the_configured_level(flow_file: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "runwright.cli", "run", str(flow_file)]
    quiet = run([*cli, "-q"], tmp_path)
    assert "hello from the task" not in quiet.stderr
    assert "the seed's context logger works too" in quiet.stderr
    assert "the user's own bug" in quiet.stderr
    verbose = run([*cli, "-v"], tmp_path)
    assert "a debug detail" in verbose.stderr


def test_an_invalid_level_is_a_one_line_error(flow_file: Path, tmp_path: Path) -> None:
    proc = run([sys.executable, "-m", "runwright.cli", "run", str(flow_file)], tmp_path, '[logging]\nlevel = "LOUD"\n')
    assert proc.returncode != 0
    assert "[logging] level 'LOUD' is not a logging level" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_application_that_configures_logging_keeps_its_own_handlers(flow_file: Path, tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stdout, format='APP %(message)s', level=logging.INFO)\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from logging_flow import flow\n"
        "flow.run()\n"
    )
    proc = run([sys.executable, str(script)], tmp_path)
    assert proc.stdout.count("APP hello from the task") == 1
    assert "hello from the task" not in proc.stderr  # printed once, by the application's handler


def test_log_lines_print_whole_beside_the_live_progress_display(flow_file: Path, tmp_path: Path) -> None:
    """On a terminal the progress bar is live; a record logged meanwhile ends up on the final
    screen as one whole line above the bar (replayed through a terminal emulator)."""
    config_path = tmp_path / "config.toml"
    config_path.write_text("")
    env = {**os.environ, "RUNWRIGHT_CONFIG": str(config_path), "COLUMNS": "150", "LINES": "60", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: runwright run on a terminal
        os.execve(sys.executable, [sys.executable, "-m", "runwright.cli", "run", str(flow_file)], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 150, 0, 0))
    screen = pyte.Screen(150, 60)
    stream = pyte.ByteStream(screen)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            stream.feed(data.replace(b"\n", b"\r\n") if b"\r\n" not in data else data)
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    rows = [row.rstrip() for row in screen.display]
    logged = [row for row in rows if "hello from the task" in row]
    assert len(logged) == 1 and logged[0].startswith("[20"), "\n".join(rows)
    assert logged[0].endswith("INFO - runwright.Task: greet | hello from the task")
    assert any("tasks" in row and "2/2" in row for row in rows), "\n".join(rows)  # the bar, complete


def test_the_run_logger_inside_a_task_is_the_tasks_logger() -> None:
    seen = []

    @task
    def who_logs():
        seen.append((runwright.get_run_logger(), runwright.context.get("logger")))

    with Flow("who") as flow:
        who_logs()
    assert flow.run().is_successful()
    (run_logger, context_logger), = seen
    assert run_logger is context_logger and run_logger.name == "runwright.Task: who_logs"


def test_the_run_logger_outside_a_run_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="outside a flow or task run"):
        runwright.get_run_logger()


PRINTING_FLOW = textwrap.dedent(
    """
    import datetime
    import logging
    from runwright import Flow, task

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.name, record.levelname, record.getMessage()))

    logging.getLogger("runwright").addHandler(Keep())

    @task(log_stdout=True)
    def loud():
        print("first line")
        print("second", "line", end="")

    @task(log_stdout=True, timeout=5)
    def loud_with_timeout():
        print("from the timeout thread")

    @task
    def quiet():
        print("not a record")

    with Flow("printing") as flow:
        loud(); loud_with_timeout(); quiet()

    if __name__ == "__main__":
        flow.run()
        printed = [r for r in records if "line" in r[2] or "thread" in r[2] or "record" in r[2]]
        import sys
        print("RESTORED", type(sys.stdout).__name__ != "_StdoutTee")
        print("RECORDS", printed)
    """
)


def test_log_stdout_logs_each_printed_line_and_the_console_shows_it_once(tmp_path: Path) -> None:
    path = tmp_path / "printing.py"
    path.write_text(PRINTING_FLOW)
    done = run([sys.executable, str(path)], tmp_path)
    assert done.returncode == 0, done.stderr
    records = eval(done.stdout.split("RECORDS ", 1)[1])  # noqa: S307 - our own repr of tuples
    assert sorted(records) == [
        ("runwright.Task: loud", "INFO", "first line"),
        ("runwright.Task: loud", "INFO", "second line"),
        ("runwright.Task: loud_with_timeout", "INFO", "from the timeout thread"),
    ]
    for line in ("first line", "second line", "from the timeout thread", "not a record"):
        assert done.stdout.count(line) == 1 + (line != "not a record")  # the print, and the RECORDS line
        assert line not in done.stderr  # the console handler does not show them a second time
    assert "RESTORED True" in done.stdout  # sys.stdout is the script's own again after the run
