"""runwright-local: store task results as files on a local (or mounted) disk.

    from runwright import Flow, task
    from runwright_local import LocalResultHandler

    @task(checkpoint=True, result_handler=LocalResultHandler(dir="/data/results"))
    def extract():
        return {"rows": 3}

Installing the package registers the handler under the name ``local`` (the packaged
default of ``[engine] result_handler``), so ``result_handler="local"`` works too; its
directory then comes from ``[plugins.local] dir`` (default ``~/.runwright/results``).
Each result is written atomically as ``file:///.../<uuid4>.rwr``; ``runwright.read_uri``
reads it back in any process that can see the file.
"""

from runwright_local.handler import LocalResultHandler

__all__ = ["LocalResultHandler"]
__version__ = "0.1.0"
