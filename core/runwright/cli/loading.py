"""Finding the Flow in a Python file, and parsing ``--param k=v``."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

from runwright.cli.errors import FlowFileError
from runwright.flow import Flow

RUN_NAME = "__runwright_flow__"


def load_flow(path: str, name: str | None = None) -> Flow:
    """Execute ``path`` (not as ``__main__``) and return its Flow (the one named ``name``)."""
    file = Path(path)
    if not file.is_file():
        raise FlowFileError(f"No such flow file: {path}")
    sys.path.insert(0, str(file.resolve().parent))
    try:
        namespace = runpy.run_path(str(file), run_name=RUN_NAME)
    except SyntaxError as exc:
        where = _quote_line(path, exc.lineno, exc.text)
        raise FlowFileError(f"{path} is not valid Python: {exc.msg} (line {exc.lineno}){where}") from exc
    except Exception as exc:
        lineno = _line_in_file(exc, file)
        where = f", line {lineno}{_quote_line(path, lineno, None)}" if lineno else ""
        raise FlowFileError(f"Loading {path} failed{where}: {type(exc).__name__}: {exc}") from exc
    except SystemExit as exc:  # sys.exit() at import time: say so instead of exiting silently
        raise FlowFileError(f"Loading {path} failed: it called sys.exit({exc.code!r}) at import time") from exc
    finally:
        sys.path.remove(str(file.resolve().parent))
    flows = {id(v): v for v in namespace.values() if isinstance(v, Flow)}.values()
    if name is not None:
        chosen = [f for f in flows if f.name == name]
        if not chosen:
            raise FlowFileError(f"{path} has no flow named {name!r}; flows found: {sorted(f.name for f in flows) or 'none'}")
        return chosen[0]
    if not flows:
        raise FlowFileError(f"{path} defines no Flow at module level (e.g. `with Flow('name') as flow: ...`)")
    if len(flows) > 1:
        names = sorted(f.name for f in flows)
        raise FlowFileError(f"{path} defines several flows ({', '.join(names)}); choose one with --flow NAME")
    return next(iter(flows))


def _line_in_file(exc: BaseException, file: Path) -> int | None:
    """The line of ``file`` the exception passed through last (the innermost frame of the
    flow file in its traceback), or None when the file's own code is not in it."""
    target = str(file.resolve())
    lineno = None
    tb = exc.__traceback__
    while tb is not None:
        if str(Path(tb.tb_frame.f_code.co_filename).resolve()) == target:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return lineno


def _quote_line(path: str, lineno: int | None, text: str | None) -> str:
    """``: `offending line``` (read from the file when the error does not carry it)."""
    if text is None and lineno:
        try:
            lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
            text = lines[lineno - 1] if 0 < lineno <= len(lines) else None
        except OSError:
            text = None
    text = (text or "").strip()
    return f": {text}" if text else ""


def parse_params(items: tuple[str, ...], flow: Flow, require_all: bool = True) -> dict[str, Any]:
    """``k=v`` pairs; a value that parses as JSON takes that type (``n=3`` is an int).
    ``require_all=False``: a required parameter may be missing (given later, e.g. by
    ``runwright deployments run NAME --param``)."""
    names = {p.name for p in flow.parameters()}
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FlowFileError(f"--param expects KEY=VALUE, got {item!r}")
        if key not in names:
            known = ", ".join(sorted(names)) or "none"
            raise FlowFileError(f"Flow {flow.name!r} has no parameter {key!r} (parameters: {known})")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    missing = sorted(p.name for p in flow.parameters() if p.required and p.name not in params)
    if missing and require_all:
        raise FlowFileError(f"Missing required parameter(s): {', '.join(missing)}; pass --param {missing[0]}=VALUE")
    return params
