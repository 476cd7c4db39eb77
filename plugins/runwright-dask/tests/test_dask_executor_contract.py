"""DaskExecutor passes the executor contract of ``runwright.testing`` on worker processes
and on in-process worker threads (real LocalClusters)."""

import pytest

from runwright.testing import ExecutorContract
from runwright_dask import DaskExecutor


class TestDaskExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self, cluster_address: str) -> DaskExecutor:
        return DaskExecutor(cluster_address)


class TestDaskExecutorOneChildPerTask(ExecutorContract):
    """``map_chunk_size=1``: every mapped child is its own Dask task."""

    @pytest.fixture
    def executor(self, process_cluster: str) -> DaskExecutor:
        return DaskExecutor(process_cluster, map_chunk_size=1)
