"""W2 on Dask: one root, N mapped children, one reducer; runwright vs raw ``distributed``.

    .venv/bin/python benchmarks/bench_dask.py            # N=1000, 10 ms of CPU per child
    .venv/bin/python benchmarks/bench_dask.py -n 200 --work-ms 5 --repeat 3

For 1 and 2 worker processes (1 thread each, one LocalCluster per size, shared by every
variant), each row times the whole thing a user waits for (graph build + run + results on
the client), median of ``--repeat``:

* ``raw client.map``: ``client.submit(root)``, ``client.map(child, ...)``,
  ``client.submit(reduce, futures).result()`` with the same functions;
* ``runwright``: the same functions as ``@task``s, ``flow.run(executor=DaskExecutor(address))``,
  mapped children chunked automatically (about 4 chunks per worker thread);
* ``runwright, 1 child/task``: ``map_chunk_size=1``, one Dask task per child like raw Dask.

``overhead/child`` is (row - raw) / N. The ``work=0`` rows repeat everything with children that
do no work, where the overhead is all there is.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Callable

WORK_SECONDS = 0.010


def burn(seconds: float) -> None:
    """Spin on this thread's CPU for ``seconds`` (CPU time, not wall time)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def make_root(n: int) -> Callable[[], list[int]]:
    def root() -> list[int]:
        return list(range(n))

    return root


def make_child(work: float) -> Callable[[int], int]:
    def child(x: int) -> int:
        if work:
            burn(work)
        return x * 2

    return child


def reduce_all(xs: list[int]) -> int:
    return sum(xs)


def run_raw(client, n: int, work: float) -> int:  # type: ignore[no-untyped-def]
    root = client.submit(make_root(n), pure=False)
    items = root.result()
    children = client.map(make_child(work), items, pure=False)
    return client.submit(reduce_all, children, pure=False).result()  # type: ignore[no-any-return]


def run_runwright(address: str, n: int, work: float, chunk: int | None) -> int:
    from runwright import Flow, task
    from runwright_dask import DaskExecutor

    root, child, reducer = task(make_root(n), name="root"), task(make_child(work), name="child"), task(reduce_all, name="reduce")
    with Flow("w2") as flow:
        total = reducer(child.map(root()))
    state = flow.run(executor=DaskExecutor(address, map_chunk_size=chunk))
    if not state.is_successful():
        raise RuntimeError(f"runwright W2 failed: {state!r}")
    return state.result[total].result  # type: ignore[no-any-return]


def timed(fn: Callable[[], int], expected: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
        if value != expected:
            raise AssertionError(f"got {value}, expected {expected}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="mapped children (default 1000)")
    parser.add_argument("--work-ms", type=float, default=10.0, help="CPU work per child in ms (default 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the median is shown")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    n = args.n
    expected = 2 * sum(range(n))
    rows = []
    for workers in args.workers:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Port 8787 is already in use")
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=logging.ERROR,
            )
        with cluster, Client(cluster) as client:
            client.wait_for_workers(workers)
            address = cluster.scheduler_address
            run_raw(client, 10, 0)  # warm the workers (imports) before timing anything
            run_runwright(address, 10, 0, None)
            for work in (args.work_ms / 1000, 0.0):
                label = f"work={args.work_ms:g} ms" if work else "work=0"
                raw = timed(lambda w=work: run_raw(client, n, w), expected, args.repeat)
                auto = timed(lambda w=work, a=address: run_runwright(a, n, w, None), expected, args.repeat)
                single = timed(lambda w=work, a=address: run_runwright(a, n, w, 1), expected, args.repeat)
                for name, seconds in (("raw client.map", raw), ("runwright", auto), ("runwright, 1 child/task", single)):
                    overhead = (seconds - raw) / n * 1e6
                    rows.append((workers, label, name, seconds, overhead))

    print(f"\nW2: 1 root, N={n} mapped children, 1 reducer; LocalCluster processes, 1 thread/worker; "
          f"median of {args.repeat}; python {sys.version.split()[0]}\n")
    header = f"{'workers':>7}  {'children':<13}  {'variant':<24}  {'seconds':>8}  {'overhead/child vs raw':>22}"
    print(header)
    print("-" * len(header))
    for workers, label, name, seconds, overhead in rows:
        extra = "" if name == "raw client.map" else f"{overhead:+.0f} us"
        print(f"{workers:>7}  {label:<13}  {name:<24}  {seconds:>8.3f}  {extra:>22}")


if __name__ == "__main__":
    main()
