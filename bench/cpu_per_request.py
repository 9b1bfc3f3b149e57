"""Worker CPU time per request of several builds or settings of the API, alternated.

Usage: python bench/cpu_per_request.py --api NAME=DIR[:VAR=VALUE,...] [--api ...] [--rounds 5]
  e.g. --api main=/tmp/main-checkout --api branch=. --api limited=.:RATE_LIMIT_PER_MINUTE=600

Requests per second on a shared machine swing by a quarter from run to run with what else
runs; the CPU time the workers spend per request moves far less, so small differences
(a few percent) show. Each round starts every API in turn (`main.py serve` from its
directory, same database, same seeded data as bench/run.py), warms it up, then drives the
REST list and the GraphQL list with wrk and divides the workers' CPU time by the requests.
Prints each round and the medians. Needs wrk; uses DATABASE_URL or the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench

SCENARIOS = ("rest_list", "graphql_list")


def worker_cpu_seconds(supervisor: psutil.Process) -> float:
    total = 0.0
    for child in supervisor.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def serve(directory: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "main.py", "serve"], cwd=directory, env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except OSError as error:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API in {directory} did not start") from error
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", action="append", required=True, metavar="NAME=DIR[:ENV]")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    apis = []
    for spec in args.api:
        name, _, rest = spec.partition("=")
        directory, _, settings = rest.partition(":")
        extra = dict(item.split("=", 1) for item in settings.split(",") if item)
        apis.append((name, Path(directory).resolve(), extra))
    bench.WORK_DIR.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], list[float]] = {}
    with bench.database(args) as url:
        readers, writers = asyncio.run(bench.seed(url, 1000, 20))
        data = bench.write_lua_data(readers, writers)
        for round_ in range(1, args.rounds + 1):
            for name, directory, extra in apis:
                port = bench.free_port()
                env = {
                    **os.environ,
                    "DATABASE_URL": url,
                    "JWT_SECRET": bench.SECRET,
                    "WORKERS": str(args.workers),
                    "LOG_LEVEL": "WARNING",
                    "PORT": str(port),
                    **extra,
                }
                process = serve(directory, env, port)
                try:
                    supervisor = psutil.Process(process.pid)
                    for scenario in SCENARIOS:
                        bench.wrk(port, scenario, args.connections, 2, data)  # warm-up
                        before = worker_cpu_seconds(supervisor)
                        result = bench.wrk(port, scenario, args.connections, args.duration, data)
                        spent = worker_cpu_seconds(supervisor) - before
                        assert result["non2xx"] == 0, result
                        micros = spent / result["requests"] * 1e6
                        results.setdefault((name, scenario), []).append(micros)
                        print(f"round {round_}: {name} {scenario}: {micros:.0f} µs CPU/request")
                finally:
                    process.terminate()
                    process.wait(timeout=60)
    print("\nmedian worker CPU per request (µs):")
    for (name, scenario), values in results.items():
        spread = f"{min(values):.0f}-{max(values):.0f}"
        print(f"  {name} {scenario}: {statistics.median(values):.0f} ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
