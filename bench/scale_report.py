"""The table of `bench/run --scale`: each request and job at every size, beside the smallest.

Cost is the CPU per request (or per job run) of the server's workers plus PostgreSQL's
backends, the figure a busy machine disturbs least; p99 is wrk's for requests and the
slowest of the rounds for jobs. A row meets the target when its cost at the largest size
is at most TARGET_RATIO times its cost at the smallest; the p99 ratio is shown beside it
(on a shared 2-core machine it moves by a factor from run to run, see RESULTS.md).

Re-render a run's table from its JSON: python bench/scale_report.py /tmp/scale.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _job(runs: list[dict]) -> dict:
    """Worst wall time and mean CPU (ours + PostgreSQL's) over the rounds, in ms."""
    return {
        "p99Ms": 1000 * max(run["seconds"] for run in runs),
        "cpuMs": 1000 * sum(run["cpuSeconds"] + run["dbCpuSeconds"] for run in runs) / len(runs),
    }


def rows_of(result: dict) -> dict[str, tuple[str, dict]]:
    """key -> (label, {"p99Ms", "cpuMs"}) for every measured item of one size."""
    rows = {key: (figure["name"], figure) for key, figure in result["requests"].items()}
    jobs = result["jobs"]
    rows["expire_none"] = ("orders expire, nothing due", _job(jobs["expireNone"]))
    rows["expire_due"] = ("orders expire, 1,000 due", _job(jobs["expireDue"]))
    for name in jobs["doctor"][0]:
        rows[f"doctor_{name}"] = (f"doctor: {name}", _job([r[name] for r in jobs["doctor"]]))
    total = [sum(r[name]["seconds"] for name in r) for r in jobs["doctor"]]
    rows["doctor_all"] = ("doctor: every check", {"p99Ms": 1000 * max(total), "cpuMs": None})
    first = sum(figure["seconds"] for figure in jobs["doctorFirst"].values())
    rows["doctor_first"] = ("doctor: first run (no checkpoint)", {"p99Ms": 1000 * first,
                                                                  "cpuMs": None})  # fmt: skip
    command = jobs["doctorCommand"]
    rows["doctor_command"] = (
        f"`shopctl doctor` (process, ok={command['ok']})",
        {"p99Ms": 1000 * command["seconds"], "cpuMs": None},
    )
    return rows


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _ratio(big: float | None, small: float | None) -> float | None:
    return big / small if big is not None and small else None


def table(results: dict[int, dict], target: float, doctor_seconds: float) -> list[list[str]]:
    sizes = sorted(results)
    big = sizes[-1]
    per_size = {size: rows_of(results[size]) for size in sizes}
    head = ["measured"]
    head += [f"p99 ms @{size:,}" for size in sizes]
    head += [f"CPU ms @{size:,}" for size in sizes]
    head += ["p99 ratio", "CPU ratio", "verdict"]
    out = [head]
    for key, (label, _) in per_size[big].items():
        figures = [per_size[size].get(key, (label, {}))[1] for size in sizes]
        p99 = _ratio(figures[-1].get("p99Ms"), figures[0].get("p99Ms"))
        cpu = _ratio(figures[-1].get("cpuMs"), figures[0].get("cpuMs"))
        out.append(
            [label]
            + [_num(f.get("p99Ms")) for f in figures]
            + [_num(f.get("cpuMs")) for f in figures]
            + [_num(p99), _num(cpu), _verdict(key, figures[-1], p99, cpu, target, doctor_seconds)]
        )
    return out


def _verdict(key, figure, p99, cpu, target, doctor_seconds) -> str:
    if key == "doctor_command" or key == "doctor_all":
        return "met" if figure["p99Ms"] < 1000 * doctor_seconds else "MISSED (> 5 s)"
    if key == "doctor_first":
        return "-"
    if cpu is None:
        return "-"
    return "met" if cpu <= target else "MISSED"


def shapes(results: dict[int, dict]) -> str:
    lines = []
    for size, result in sorted(results.items()):
        shape = result["shape"]
        lines.append(
            f"{size:,} products: {shape['orders']:,} orders, {shape['buyers']:,} buyers, "
            f"{shape['events']:,} events, built in {shape['seconds']}s, "
            f"{shape['databaseMiB']:,} MiB; load average {result['loadAverage']} before the "
            f"requests, {result['loadAverageEnd']} after the jobs"
        )
    return "\n".join(lines)


def main() -> int:
    import report

    results = {
        int(size): result for size, result in json.loads(Path(sys.argv[1]).read_text()).items()
    }
    render = report.plain if "--plain" in sys.argv else report.markdown
    print(render(table(results, 1.5, 5.0)))
    print("\n" + shapes(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
