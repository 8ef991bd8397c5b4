"""The processes a run starts: `shopctl serve`, the sandbox, the ceiling app; their memory.

Each is started in its own session (process group), logs to a file in the run's work
directory and is stopped by its own pid (SIGTERM, then SIGKILL of its group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT = 90.0


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        stop_process(self.process)

    def workers(self) -> list[psutil.Process]:
        return sanic_workers(self.process.pid)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(
    name: str, args: list[str], env: dict[str, str], workdir: Path, url: str, ready_path: str
) -> Service:
    """Start `args` and wait until GET url+ready_path answers 2xx."""
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            args,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service = Service(name, process, url, log)
    try:
        wait_ready(service, ready_path)
    except BaseException:
        service.stop()
        raise
    return service


def wait_ready(service: Service, path: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"{service.name} exited early; see {service.log}:\n"
                + service.log.read_text(errors="replace")[-3000:]
            )
        try:
            with urllib.request.urlopen(service.url + path, timeout=2) as answer:
                if 200 <= answer.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{service.name} not ready after {READY_TIMEOUT:.0f}s; see {service.log}")


def stop_process(process: subprocess.Popen, grace: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # Sanic's workers and helpers share the group we created for this process only.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def shopctl_serve(env: dict[str, str], workdir: Path, port: int, workers: int) -> Service:
    args = [
        sys.executable,
        "-m",
        "shopctl",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return launch("shopctl-serve", args, env, workdir, f"http://127.0.0.1:{port}", "/api/v1/health")


def sandbox(
    env: dict[str, str], workdir: Path, port: int, webhook_url: str, secret: str, latency_ms: int
) -> Service:
    args = [
        sys.executable,
        "-m",
        "shopctl",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--webhook-url",
        webhook_url,
        "--webhook-secret",
        secret,
        "--latency-ms",
        str(latency_ms),
    ]
    return launch(
        f"sandbox-{latency_ms}ms",
        args,
        env,
        workdir,
        f"http://127.0.0.1:{port}",
        "/_sandbox/health",
    )


def ceiling(env: dict[str, str], workdir: Path, port: int, workers: int, bodies: Path) -> Service:
    args = [
        sys.executable,
        str(BENCH_DIR / "ceiling_app.py"),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--bodies",
        str(bodies),
    ]
    return launch("ceiling", args, env, workdir, f"http://127.0.0.1:{port}", "/api/v1/product")


def sanic_workers(main_pid: int) -> list[psutil.Process]:
    """The worker processes under a Sanic main process (they carry SANIC_WORKER_NAME)."""
    workers = []
    for child in psutil.Process(main_pid).children(recursive=True):
        try:
            if child.environ().get("SANIC_WORKER_NAME", "").startswith("Sanic-Server"):
                workers.append(child)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sorted(workers, key=lambda worker: worker.pid)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User plus system CPU time the processes have used so far."""
    return sum(_cpu(process) or 0.0 for process in processes)


def cpu_by_pid(pids) -> dict[int, float]:
    """CPU time used so far by each live process of `pids`."""
    found = {}
    for pid in pids:
        try:
            used = _cpu(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
        if used is not None:
            found[pid] = used
    return found


def _cpu(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return None
    return times.user + times.system


def settle(processes: list[psutil.Process], idle_share: float = 0.05, limit: float = 60.0):
    """Wait until the processes are (nearly) idle: the work a load left queued, e.g. logins
    still hashing after wrk stopped, must not be charged to the next scenario."""
    deadline = time.monotonic() + limit
    used = cpu_seconds(processes)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(processes)
        if now - used < 0.5 * idle_share * max(1, len(processes)):
            return
        used = now


def rss_mib(processes: list[psutil.Process]) -> dict[int, float]:
    """Resident memory of each process, MiB, by pid."""
    sizes = {}
    for process in processes:
        try:
            sizes[process.pid] = process.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            sizes[process.pid] = float("nan")
    return sizes
