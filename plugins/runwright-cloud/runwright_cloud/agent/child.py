"""The flow-run process of a claimed run: ``python -m runwright_cloud.agent.child SPEC``.

``SPEC`` is JSON: ``{"flow_run_id", "deployment": {"name", "flow_name", "storage",
"storage_ref", "executor"}}``. The code comes from the deployment's storage (cached by
content hash under ``~/.runwright/code/``); then the run is the one ``runwright run FILE
--flow-run-id ID`` runs or resumes, with the cloud runners. When the code cannot be had or
loaded, this process prints why and exits non-zero before the run starts: its agent records
the run ``Failed`` with that message.
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: exit code when the deployment's code could not be fetched
FETCH_FAILED = 3


def fetch_code(deployment: dict[str, Any]) -> str:
    from runwright.plugins.process import get_plugin_manager
    from runwright.storage import code_cache_dir
    from runwright_cloud.client import Client

    storage = get_plugin_manager().storage(deployment["storage"])
    path = storage.fetch(deployment["storage_ref"], Client(), code_cache_dir())
    return str(path)


def main(argv: list[str]) -> int:
    """Run the claimed run ``argv[0]`` (the JSON spec) names; the exit code."""
    spec = json.loads(argv[0])
    flow_run_id = spec["flow_run_id"]
    deployment = spec.get("deployment")
    if not deployment:
        print(f"Flow run {flow_run_id} has no deployment: nothing says where its code is", file=sys.stderr)
        return FETCH_FAILED
    try:
        path = fetch_code(deployment)
    except Exception as exc:  # noqa: BLE001 - any failure is the run's load error
        print(
            f"Could not fetch the code of deployment {deployment.get('name')!r} from storage "
            f"{deployment.get('storage')!r}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return FETCH_FAILED
    from runwright.cli import main as runwright_main

    args = ["run", path, "--flow-run-id", flow_run_id]
    if deployment.get("flow_name"):
        args += ["--flow", deployment["flow_name"]]
    if deployment.get("executor"):
        args += ["--executor", deployment["executor"]]
    try:
        runwright_main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
