"""Drive a server with wrk (a compiled load generator in its own process) and read its figures.

Every scenario goes through `bench/lua/replay.lua`, which cycles through a file of
pre-built requests and prints one `BENCH_JSON {...}` line at the end: requests,
latency percentiles, socket errors and the non-2xx answers it counted itself.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPLAY = Path(__file__).parent / "lua" / "replay.lua"


@dataclass(frozen=True)
class WrkSettings:
    threads: int = 2
    connections: int = 32
    duration: float = 10.0
    timeout: float = 30.0

    def args(self) -> list[str]:
        return [
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{self.duration:g}s",
            f"--timeout={self.timeout:g}s",
            "--latency",
        ]

    def describe(self) -> str:
        return f"wrk -t{self.threads} -c{self.connections} -d{self.duration:g}s --latency"


@dataclass
class Result:
    name: str
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    wrapped: int = 0
    lines: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    sample: str = ""
    settings: str = ""
    cpu_seconds: float | None = None  # the server's workers, over the run
    db_cpu_seconds: float | None = None  # PostgreSQL's backends for the run's database
    wrk_cpu_seconds: float | None = None  # the load generator itself

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cpu_seconds is None or not self.requests:
            return None
        return 1000 * self.cpu_seconds / self.requests

    @property
    def total_cpu_ms_per_request(self) -> float | None:
        """Everything the machine spent per request: workers, PostgreSQL and wrk."""
        parts = (self.cpu_seconds, self.db_cpu_seconds or 0.0, self.wrk_cpu_seconds)
        if None in parts or not self.requests:
            return None
        return 1000 * sum(parts) / self.requests

    @property
    def db_cpu_ms_per_request(self) -> float | None:
        if self.db_cpu_seconds is None or not self.requests:
            return None
        return 1000 * self.db_cpu_seconds / self.requests

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "p50Ms": self.p50_ms,
            "p90Ms": self.p90_ms,
            "p99Ms": self.p99_ms,
            "maxMs": self.max_ms,
            "non2xx": self.non2xx,
            "socketErrors": self.socket_errors,
            "statuses": self.statuses,
            "wrapped": self.wrapped,
            "lines": self.lines,
            "sample": self.sample,
            "wrk": self.settings,
            "workerCpuSeconds": self.cpu_seconds,
            "workerCpuMsPerRequest": self.cpu_ms_per_request,
            "dbCpuSeconds": self.db_cpu_seconds,
            "dbCpuMsPerRequest": self.db_cpu_ms_per_request,
            "wrkCpuSeconds": self.wrk_cpu_seconds,
            "totalCpuMsPerRequest": self.total_cpu_ms_per_request,
        }


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    return path


def command(url: str, requests_file: Path, settings: WrkSettings) -> list[str]:
    return [
        require_wrk(),
        *settings.args(),
        "-s",
        str(REPLAY),
        url,
        "--",
        str(requests_file),
        str(settings.threads),
    ]


def start(url: str, requests_file: Path, settings: WrkSettings) -> subprocess.Popen:
    """wrk running in the background; `finish()` waits for it and parses its report."""
    return subprocess.Popen(
        command(url, requests_file, settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(name: str, process: subprocess.Popen, settings: WrkSettings) -> Result:
    """Wait for wrk; its CPU time comes from the rusage of children reaped meanwhile (the
    harness reaps nothing else while a scenario runs, except a parallel wrk: then None)."""
    before = _children_cpu()
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed for {name} ({process.returncode}): {stderr.strip()}")
    result = parse(name, stdout, settings)
    result.wrk_cpu_seconds = _children_cpu() - before
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(name: str, url: str, requests_file: Path, settings: WrkSettings) -> Result:
    return finish(name, start(url, requests_file, settings), settings)


def parse(name: str, stdout: str, settings: WrkSettings) -> Result:
    line = next((row for row in stdout.splitlines() if row.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line for {name}:\n{stdout}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Result(
        name=name,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non2xx=data["non2xx"],
        socket_errors=sum(
            data[key] for key in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        wrapped=data["wrapped"],
        lines=data["lines"],
        statuses=data["statuses"],
        sample=data["sample"],
        settings=settings.describe(),
    )
