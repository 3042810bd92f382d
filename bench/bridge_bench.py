"""vmq_bridge throughput to a real mosquitto, next to publishing to mosquitto directly.

loadgen fan-in (10 publishers -> 1 subscriber, 64 B payloads, MQTT 3.1.1) straight to mosquitto,
then with the publishers on a vmqpy node (default config plus the bridge) bridging `lg/#` out to
mosquitto at the same QoS, the subscriber still on mosquitto. Both brokers on --broker-core (0),
loadgen on --loadgen-core (1). One JSON line per run; `recv_rate` is what the subscriber got per
second. The outage figure (100,000 QoS 1 messages while the remote is down, a restart between)
is bench/bridge_outage_bench.py.

    .venv/bin/python bench/bridge_bench.py [--duration 5] [--qos 0,1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from broker import start_mosquitto, start_vmqpy
from scenarios import loadgen_cmd

from vmqpy.admin.rpc import call


def bridge_lines(port: int, qos: int, **opts: str) -> tuple[str, ...]:
    """vernemq.conf lines of bridge br0 to mosquitto on `port`, carrying lg/# out at `qos`."""
    key = "vmq_bridge.tcp.br0"
    return ("plugins.vmq_bridge = on", f"{key} = 127.0.0.1:{port}", f'{key}.topic.1 = "lg/# out {qos}"',
            f"{key}.restart_timeout = 1", *(f"{key}.{k} = {v}" for k, v in opts.items()))


def loadgen(port: int, sub_port: int, qos: int, duration: float, core: str) -> dict:
    args = ["--sub-port", str(sub_port), "--pattern", "fanin", "--pubs", "10", "--subs", "1",
            "--qos", str(qos), "--duration", str(duration)]
    out = subprocess.run(loadgen_cmd("127.0.0.1", port, core, args), capture_output=True, text=True,
                         timeout=duration + 120)
    res = json.loads(out.stdout)
    return {k: res[k] for k in ("sent", "received", "lost", "duplicates", "out_of_order", "recv_rate")}


def wait_bridge(socket_path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok, out = call(socket_path, ["bridge", "show"])
        if ok and "| connected " in out:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the bridge did not connect: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--qos", default="0,1")
    ap.add_argument("--broker-core", default="0")
    ap.add_argument("--loadgen-core", default="1")
    o = ap.parse_args()
    for qos in (int(q) for q in o.qos.split(",")):
        mosq = start_mosquitto(o.broker_core)
        try:
            res = loadgen(mosq.port, mosq.port, qos, o.duration, o.loadgen_core)
        finally:
            mosq.stop()
        print(json.dumps({"run": "direct to mosquitto", "qos": qos, **res}), flush=True)
        mosq = start_mosquitto(o.broker_core)
        node = start_vmqpy(o.broker_core, extra=bridge_lines(mosq.port, qos))
        try:
            wait_bridge(str(Path(node.tmpdir) / "data" / "vmq.sock"))
            res = loadgen(node.port, mosq.port, qos, o.duration, o.loadgen_core)
        finally:
            node.stop()
            mosq.stop()
        print(json.dumps({"run": "vmqpy -> bridge -> mosquitto", "qos": qos, **res}), flush=True)


if __name__ == "__main__":
    main()
