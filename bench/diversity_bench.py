#!/usr/bin/env python3
"""vmq_diversity figures: authenticated CONNECTs/s and publish throughput with per-publish ACL checks.

    .venv/bin/python bench/diversity_bench.py                       # every scenario
    .venv/bin/python bench/diversity_bench.py connect-redis pub-cache --connects 200 --duration 5

Starts PostgreSQL and Redis (Debian's packages, as test/diversity does) on free ports in temp
dirs with VerneMQ's layout and two users with client_id '*' and the ACL `lg/#`: `bench`, whose
bcrypt hash has VerneMQ's sample cost 12, and `bench4` with cost 4. Then a vmqpy node per
scenario (bench/broker.py's configuration, pinned to core 0; loadgen on core 1). One JSON line
per scenario, with `connects_per_s` or `recv_rate` and `msgs_per_broker_cpu_s`:

| name | what |
| --- | --- |
| `connect-postgres` | `loadgen --churn N` (CONNECT, CONNACK, DISCONNECT) as `bench`: auth/postgres.lua, bcrypt 12 |
| `connect-redis` | the same through auth/redis.lua |
| `connect-postgres-cost4`, `connect-redis-cost4` | the same as `bench4`: what a CONNECT costs besides bcrypt |
| `connect-passwd` | the same against vmq_passwd (sha512 file): the node without a database |
| `pub-cache` | 50 pairs, QoS 0, as `bench4` through auth/postgres.lua: every PUBLISH checked by the auth cache |
| `pub-vmq_acl` | the same with vmq_passwd + vmq_acl (`user bench` / `topic lg/#`) instead |

The broker's CPU of a pub-* run is counted from when every connection is up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The database servers and rows of test/diversity; test/ and bench/ each have a broker.py, so
# the test one is imported (by servers) and forgotten before bench's is.
sys.path[:0] = [str(HERE.parent / "test"), str(HERE.parent / "test" / "diversity")]
from authdb import POSTGRES_SCHEMA, bcrypt_hash  # noqa: E402
from servers import Postgres, Redis  # noqa: E402

del sys.modules["broker"]
sys.path.insert(0, str(HERE))
from broker import _spawn, cpu_s, free_port, vmqpy_config  # noqa: E402
from scenarios import Run, loadgen_cmd  # noqa: E402

REPO = HERE.parent
PASSWORD = "bench-pw"
# user -> bcrypt cost: 12 as the $2a$12$ hash of postgres_cockroach_commons.lua's example row;
# 4 to see what a CONNECT costs besides bcrypt
USERS = {"bench": 12, "bench4": 4}
ACL = json.dumps([{"pattern": "lg/#"}])


def seed(pg: Postgres, redis: Redis) -> None:
    pg.create_database()
    with pg.connect() as conn:
        conn.execute(POSTGRES_SCHEMA)
    for user, cost in USERS.items():
        passhash = bcrypt_hash(PASSWORD, cost)
        with pg.connect() as conn:
            conn.execute("INSERT INTO vmq_auth_acl VALUES ('', '*', %s, %s, %s, %s)", (user, passhash, ACL, ACL))
        redis.client().set(json.dumps(["", "*", user], separators=(",", ":")),
                           json.dumps({"passhash": passhash, "publish_acl": json.loads(ACL),
                                       "subscribe_acl": json.loads(ACL)}))


def node_conf(port: int, tmpdir: str, auth: str, pg: Postgres, redis: Redis) -> str:
    """bench/broker.py's configuration with authentication by `auth` (postgres, redis, passwd)."""
    text = vmqpy_config(port, tmpdir).replace("allow_anonymous = on", "allow_anonymous = off")
    if auth == "passwd":
        subprocess.run([str(REPO / "bin" / "vmq-passwd"), str(Path(tmpdir) / "etc" / "vmq.passwd"), "bench"],
                       input=f"{PASSWORD}\n{PASSWORD}\n", text=True, check=True, capture_output=True)
        (Path(tmpdir) / "etc" / "vmq.acl").write_text("user bench\ntopic lg/#\n")
        return text
    server = pg if auth == "postgres" else redis
    lines = ["plugins.vmq_diversity = on", f"vmq_diversity.auth_{auth}.enabled = on",
             f"vmq_diversity.{auth}.host = 127.0.0.1", f"vmq_diversity.{auth}.port = {server.port}"]
    if auth == "postgres":
        lines += [f"vmq_diversity.postgres.user = {pg.user_name}", f"vmq_diversity.postgres.password = {pg.password}",
                  f"vmq_diversity.postgres.database = {pg.database}",
                  "vmq_diversity.postgres.password_hash_method = bcrypt"]
    return text.replace("plugins.vmq_acl = on", "plugins.vmq_acl = off") + "\n".join(lines) + "\n"


def start_node(auth: str, pg: Postgres, redis: Redis, core: str):
    tmpdir, port = tempfile.mkdtemp(prefix="bench-div-"), free_port()
    conf = Path(tmpdir) / "vernemq.conf"
    conf.write_text(node_conf(port, tmpdir, auth, pg, redis))
    return _spawn("vmqpy", [str(REPO / ".venv/bin/python"), "-m", "vmqpy.scripts.vernemq", "console",
                            "--config", str(conf)], tmpdir, port, core, 60)


def loadgen(node, core: str, user: str, args: list[str], timeout: float, from_ready: bool) -> dict:
    """One loadgen run as `bench`; the broker's CPU from the start, or (`from_ready`) from when
    every connection is up, so a publish figure leaves out the bcrypt checks of the CONNECTs."""
    mark = {"cpu0": cpu_s(node.pids()), "t0": time.monotonic()}

    def on_event(ev: dict) -> None:
        if ev["event"] == "ready" and from_ready:
            mark.update(cpu0=cpu_s(node.pids()), t0=time.monotonic())

    cmd = loadgen_cmd("127.0.0.1", node.port, core, [*args, "--username", user, "--password", PASSWORD])
    res = Run(cmd, timeout, on_event).result()
    busy = cpu_s(node.pids()) - mark["cpu0"]
    res["broker_cpu_s"] = round(busy, 2)
    res["broker_cpu_pct"] = round(100 * busy / max(time.monotonic() - mark["t0"], 1e-3), 1)
    if res.get("received"):
        res["msgs_per_broker_cpu_s"] = round(res["received"] / max(busy, 1e-3))
    else:
        res["connects_per_s"] = round(res.get("connected", 0) / max(res.get("connect_s", 0), 1e-3), 2)
    return res


SCENARIOS = {  # name: (authentication, loadgen mode, user)
    "connect-postgres": ("postgres", "churn", "bench"),
    "connect-redis": ("redis", "churn", "bench"),
    "connect-postgres-cost4": ("postgres", "churn", "bench4"),
    "connect-redis-cost4": ("redis", "churn", "bench4"),
    "connect-passwd": ("passwd", "churn", "bench"),
    "pub-cache": ("postgres", "pairs", "bench4"),
    "pub-vmq_acl": ("passwd", "pairs", "bench"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", metavar="NAME", help=", ".join(SCENARIOS) + " (default: all)")
    ap.add_argument("--connects", type=int, default=300, help="CONNECTs per connect-* scenario (300)")
    ap.add_argument("--duration", type=int, default=5, help="seconds of each pub-* scenario (5)")
    ap.add_argument("--broker-core", default="0")
    ap.add_argument("--loadgen-core", default="1")
    o = ap.parse_args()
    unknown = set(o.scenarios) - SCENARIOS.keys()
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    pg, redis = Postgres(), Redis()
    failed = False
    try:
        pg.start()
        redis.start()
        seed(pg, redis)
        for name in o.scenarios or SCENARIOS:
            auth, kind, user = SCENARIOS[name]
            node = start_node(auth, pg, redis, o.broker_core)
            try:
                # at most 16 CONNECTs in progress: bcrypt 12 takes ~0.25 s of a core each, and the
                # broker closes a connection whose CONNECT is not done within 30 s
                args = ["--connect-burst", "16", "--connect-timeout", "600"]
                if kind == "churn":
                    args += ["--churn", str(o.connects), "--id-prefix", name]
                else:
                    args += ["--pattern", "pairs", "--pubs", "50", "--subs", "50", "--qos", "0", "--payload", "64",
                             "--duration", str(o.duration)]
                res = loadgen(node, o.loadgen_core, user, args, 900, kind == "pairs")
            finally:
                node.stop()
            res.update(name=name, auth=auth, user=user, bcrypt_cost=USERS[user] if auth != "passwd" else None)
            failed |= res["loadgen_rc"] != 0
            print(json.dumps(res), flush=True)
    finally:
        pg.cleanup()
        redis.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
