"""runwright-dask: run task runs, mapped children included, on a Dask cluster.

    from runwright_dask import DaskExecutor

    if __name__ == "__main__":          # needed with local_processes=True (spawned workers)
        flow.run(executor=DaskExecutor(local_processes=True))
        flow.run(executor="dask")       # the same, configured by [plugins.dask]
        flow.run(executor=DaskExecutor("tcp://scheduler:8786"))   # an existing cluster

With no address a ``LocalCluster`` is started for the run and shut down after it.
"""

from runwright_dask.executor import DaskExecutor

__all__ = ["DaskExecutor"]
