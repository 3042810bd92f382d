#!/usr/bin/env python3
"""Benchmark scenarios against one running broker; one JSON line per scenario.

    bench/scenarios.py --port 1883 --broker-pid 1234 fanin-q0 latency-q1 idle
    bench/scenarios.py --list

The broker's pids (for RSS and CPU) are optional. A QoS 1/2 scenario that loses
a message marks its line "failed" and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import cpu_s, process_tree, rss_kib  # noqa: E402

LOADGEN = Path(__file__).resolve().parent / "loadgen"
FDS_PER_PROC = 15_000  # the fd limit here is 20,000 per process
Pids = Callable[[], list[int]]


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    kind: str = "msgs"  # msgs | idle | soak
    args: tuple[str, ...] = ()
    rate: int = 0  # > 0: a latency scenario at this offered rate


def msgs(name: str, pattern: str, pubs: int, subs: int, qos: int, payload: int = 64,
         rate: int = 0, proto: int = 4) -> Scenario:
    shape = {"fanin": f"{pubs}->1 on a wildcard", "fanout": f"1->{subs}", "pairs": f"{pubs} pairs"}
    how = f"{rate} msg/s open loop" if rate else "max rate"
    doc = f"{shape[pattern]}, QoS {qos}, {payload} B, MQTT {'5' if proto == 5 else '3.1.1'}, {how}"
    args = ("--pattern", pattern, "--pubs", str(pubs), "--subs", str(subs), "--qos", str(qos),
            "--payload", str(payload), "--rate", str(rate), "--proto", str(proto))
    return Scenario(name, doc, "msgs", args, rate)


SCENARIOS = {s.name: s for s in [
    msgs("fanin-q0", "fanin", 10, 1, 0),
    msgs("fanin-q1", "fanin", 10, 1, 1),
    msgs("fanin-q0-1k", "fanin", 10, 1, 0, payload=1024),
    msgs("fanout-q0", "fanout", 1, 10, 0),
    msgs("fanout-q1", "fanout", 1, 10, 1),
    msgs("pairs-q0", "pairs", 50, 50, 0),
    msgs("pairs-q1", "pairs", 50, 50, 1),
    msgs("pairs-q2", "pairs", 50, 50, 2),
    msgs("pairs-q1-1k", "pairs", 50, 50, 1, payload=1024),
    msgs("pairs-q1-v5", "pairs", 50, 50, 1, proto=5),
    msgs("latency-q0", "pairs", 1, 1, 0, rate=2000),
    msgs("latency-q1", "pairs", 1, 1, 1, rate=2000),
    msgs("latency-q2", "pairs", 1, 1, 2, rate=2000),
    Scenario("idle", "hold N idle connections (keepalive 10 s): connect rate, broker KiB/conn", "idle"),
    Scenario("soak", "10 pairs, QoS 1, 5,000 msg/s for --soak-duration; broker RSS every 10 s",
             "soak", msgs("", "pairs", 10, 10, 1, rate=5000).args, 5000),
]}
DEFAULT = [n for n in SCENARIOS if n != "soak"]


def loadgen_cmd(host: str, port: int, core: str | None, args: list[str]) -> list[str]:
    cmd = [str(LOADGEN), "--host", host, "--port", str(port), *args]
    return ["taskset", "-c", core, *cmd] if core is not None else cmd


class Run:
    """One loadgen process; calls on_event for each JSON line it writes on stderr."""

    def __init__(self, cmd: list[str], timeout: float, on_event: Callable[[dict], None]):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.on_event = on_event
        self.watchdog = threading.Timer(timeout, self.proc.kill)  # loadgen bounds itself; belt and braces
        self.watchdog.start()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            if line.startswith("{"):
                self.on_event(json.loads(line))
            else:
                sys.stderr.write(line)

    def result(self) -> dict:
        out = self.proc.stdout.read()
        self.reader.join()
        rc = self.proc.wait()
        self.watchdog.cancel()
        res = json.loads(out) if out.strip() else {"error": "loadgen printed nothing"}
        res["loadgen_rc"] = rc
        return res


def broker_pids(pids: list[int]) -> list[int]:
    return [p for pid in pids for p in process_tree(pid)]


def run_msgs(scn: Scenario, o: argparse.Namespace, pids: Pids) -> dict:
    soak = scn.kind == "soak"
    duration = o.soak_duration if soak else o.duration
    samples: list[tuple[float, int]] = []
    mark: dict[str, float] = {}

    def on_event(ev: dict) -> None:
        if ev["event"] == "ready":
            mark["cpu0"], mark["t0"] = cpu_s(pids()), time.monotonic()
            samples.append((0.0, rss_kib(pids())))
        elif ev["event"] == "progress" and "t0" in mark:
            samples.append((round(time.monotonic() - mark["t0"], 1), rss_kib(pids())))

    args = [*scn.args, "--duration", str(duration), "--label", scn.name]
    if soak:
        args += ["--progress", "10", "--rate", str(o.soak_rate)]
    res = Run(loadgen_cmd(o.host, o.port, o.loadgen_core, args), duration + 180, on_event).result()
    if "t0" in mark:
        busy = cpu_s(pids()) - mark["cpu0"]
        res["broker_cpu_s"] = round(busy, 2)
        res["broker_cpu_pct"] = round(100 * busy / max(time.monotonic() - mark["t0"], 1e-3), 1)
        samples.append((round(time.monotonic() - mark["t0"], 1), rss_kib(pids())))
    if soak and samples:
        res["rss_kib"] = samples
        res["rss_growth_kib"] = samples[-1][1] - samples[1 if len(samples) > 2 else 0][1]
    return res


def run_idle(scn: Scenario, o: argparse.Namespace, pids: Pids) -> dict:
    """Several loadgen processes (fd limit), each from its own 127.x source addresses."""
    n, procs = o.idle_conns, -(-o.idle_conns // FDS_PER_PROC)
    rss0, ready = rss_kib(pids()), threading.Semaphore(0)
    t0, runs = time.monotonic(), []
    for k in range(procs):
        share = n // procs + (k < n % procs)
        binds = ",".join(f"127.{k + 1}.{j}.1" for j in range(1, 5))  # 4 x 28k ports each
        args = ["--idle", str(share), "--hold", str(o.hold), "--keepalive", "10", "--bind", binds,
                "--connect-timeout", str(o.connect_timeout), "--label", f"{scn.name}/{k}"]
        runs.append(Run(loadgen_cmd(o.host, o.port, o.loadgen_core, args), o.connect_timeout + o.hold + 120,
                        lambda ev: ev["event"] == "ready" and ready.release()))
    deadline = t0 + o.connect_timeout + 5
    all_ready = all(ready.acquire(timeout=max(deadline - time.monotonic(), 0)) for _ in runs)
    connect_s = time.monotonic() - t0
    time.sleep(1)  # let the broker finish its per-connection setup
    rss1 = rss_kib(pids())
    parts = [r.result() for r in runs]
    total = sum(p.get("connected", 0) for p in parts)
    res = {"label": scn.name, "mode": "idle", "connections": n, "connected": total, "procs": procs,
           "connect_s": round(connect_s, 3), "connect_rate": round(total / connect_s) if all_ready else 0,
           "loadgen_rc": max(p["loadgen_rc"] for p in parts)}
    for key in ("pings", "pongs", "errors", "disconnects"):
        res[key] = sum(p.get(key, 0) for p in parts)
    if rss0:
        res.update(rss_before_kib=rss0, rss_after_kib=rss1,
                   kib_per_conn=round((rss1 - rss0) / max(total, 1), 2))
    return res


def run_scenario(scn: Scenario, o: argparse.Namespace, pids: Pids) -> dict:
    res = run_idle(scn, o, pids) if scn.kind == "idle" else run_msgs(scn, o, pids)
    res["scenario"] = scn.name
    res["doc"] = scn.doc
    qos = min(res.get("qos", 0), res.get("sub_qos", 0))
    res["failed"] = res["loadgen_rc"] != 0
    if res["failed"]:
        why = f"QoS {qos}: {res.get('lost')} lost" if qos else f"loadgen exit {res['loadgen_rc']}"
        print(f"\n*** {scn.name} FAILED ({why}) ***\n", file=sys.stderr)
    return res


def add_options(p: argparse.ArgumentParser) -> None:
    """Options shared with bench/compare."""
    p.add_argument("--loadgen-core", help="taskset core list for the load generator")
    p.add_argument("--quick", action="store_true", help="short runs, 2,000 idle connections")
    p.add_argument("--duration", type=float, help="seconds of publishing per scenario (5; quick 2)")
    p.add_argument("--idle-conns", type=int, help="connections held by 'idle' (10000; quick 2000)")
    p.add_argument("--hold", type=float, default=5, help="seconds 'idle' holds them (5)")
    p.add_argument("--connect-timeout", type=float, default=60,
                   help="seconds each 'idle' loadgen may take to connect its share (60)")
    p.add_argument("--soak-duration", type=float, default=1800, help="seconds of 'soak' (1800)")
    p.add_argument("--soak-rate", type=int, default=5000,
                   help="msg/s of 'soak' (5000); the issue's soak is 50%% of measured peak QoS 1")
    p.add_argument("scenarios", nargs="*", help="names, or 'all' (everything but soak)")


def resolve(o: argparse.Namespace) -> list[Scenario]:
    o.duration = o.duration or (2 if o.quick else 5)
    o.idle_conns = o.idle_conns or (2000 if o.quick else 10_000)
    names = DEFAULT if not o.scenarios or o.scenarios == ["all"] else o.scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(unknown)}; see --list")
    return [SCENARIOS[n] for n in names]


def list_scenarios() -> None:
    for s in SCENARIOS.values():
        print(f"{s.name:14} {s.doc}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--broker-pid", type=int, action="append", default=[],
                   help="broker process for RSS/CPU (repeatable; children included)")
    p.add_argument("--list", action="store_true")
    add_options(p)
    o = p.parse_args()
    if o.list:
        list_scenarios()
        return 0
    failed = False
    for scn in resolve(o):
        res = run_scenario(scn, o, lambda: broker_pids(o.broker_pid))
        failed |= res["failed"]
        print(json.dumps(res), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
