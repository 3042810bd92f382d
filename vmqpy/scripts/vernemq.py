"""`vernemq console|start|stop|restart|ping|chkconfig|version|getpid|config`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time

from vmqpy import __version__

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def default_config() -> str:
    return os.environ.get("VERNEMQ_CONF") or os.path.join("etc", "vernemq.conf")


def load_config(path: str, preflight: bool = False):
    """Load the config or exit 1 with the file:line: key: why message. `preflight`: also check that
    every enabled plugin can start (module found, vmq_acl's file there) before any port opens."""
    from vmqpy import config

    try:
        cfg = config.load(path)
    except config.ConfigError as e:
        print(f"Error in configuration: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"Cannot read configuration {path}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    if preflight:
        from vmqpy.plugins.manager import preflight as plugin_problems

        problems = plugin_problems(cfg)
        for key, why in problems:
            plugin = f"plugins.{key.split('.')[0]}"
            line = cfg.line_of(key) or cfg.line_of(plugin)
            print(f"Error in configuration: {config.ConfigError(cfg.path, line, key, why)}", file=sys.stderr)
        if problems:
            sys.exit(1)
    return cfg


def pid_file(cfg) -> str:
    return cfg["pid_file"]


def not_responding(cfg) -> int:
    print(f"Node {cfg['nodename']} not responding to pings")
    return 1


# -- commands -----------------------------------------------------------------
def cmd_console(path: str) -> int:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from vmqpy import assembly, log
    from vmqpy.broker.listeners import ListenerError
    from vmqpy.cluster.partitions import repartition
    from vmqpy.cluster.workers import Supervisor
    from vmqpy.plugins.manager import PluginError
    from vmqpy.store.messages import StoreError

    cfg = load_config(path, preflight=True)
    log.setup(cfg)
    for key, why in cfg.ignored():
        logging.getLogger("vmqpy.config").info("ignored: %s (%s)", key, why)
    check_ulimit()
    from vmqpy.admin.rpc import ping

    if ping(cfg["admin.socket"], 1.0):
        print(f"Node {cfg['nodename']} is already running", file=sys.stderr)
        return 1
    # The pid file exists before the node answers pings, so `start` (and
    # systemd's Type=forking) never sees a running node without it.
    pidf = pid_file(cfg)
    os.makedirs(os.path.dirname(pidf), exist_ok=True)
    with open(pidf, "w") as f:
        f.write(f"{os.getpid()}\n")
    try:
        try:
            repartition(cfg, cfg["nr_of_workers"])  # the count changed: sessions move to their owners
            if cfg["nr_of_workers"] == 1:
                node = assembly.node_with_services(cfg, assembly.single_process_runtime(cfg))
                assembly.start(node)
            else:
                node = Supervisor(cfg)  # docs/workers.md
                node.start()
        except (ListenerError, StoreError, PluginError, RuntimeError) as e:
            print(f"Node {cfg['nodename']} failed to start: {e}", file=sys.stderr)
            return 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(sig, lambda: gevent.spawn(node.stop))
        node.stopped.wait()
    finally:
        try:
            os.unlink(pidf)
        except FileNotFoundError:
            pass
    return 0


def cmd_start(path: str) -> int:
    from vmqpy.admin.rpc import ping

    cfg = load_config(path, preflight=True)
    if ping(cfg["admin.socket"], 2.0):
        print("Node is already running!")
        return 1
    os.makedirs(cfg["platform_log_dir"], exist_ok=True)
    out = open(os.path.join(cfg["platform_log_dir"], "run.log"), "ab")
    child = subprocess.Popen([sys.executable, "-m", "vmqpy.scripts.vernemq", "--config", os.path.abspath(path),
                              "console"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"Node {cfg['nodename']} failed to start; see {out.name}", file=sys.stderr)
            return 1
        if ping(cfg["admin.socket"], 1.0):
            return 0
        time.sleep(0.1)
    print(f"Node {cfg['nodename']} did not answer within {START_TIMEOUT:.0f}s; see {out.name}", file=sys.stderr)
    return 1


def cmd_stop(path: str) -> int:
    from vmqpy.admin.rpc import call, ping

    cfg = load_config(path)
    pid = read_pid(cfg)
    try:
        call(cfg["admin.socket"], ["stop"], 10.0)
    except OSError:
        return not_responding(cfg)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not ping(cfg["admin.socket"], 1.0) and not (pid and process_alive(pid)):
            print("ok")
            return 0
        time.sleep(0.1)
    print(f"Node {cfg['nodename']} did not stop within {STOP_TIMEOUT:.0f}s", file=sys.stderr)
    return 1


def cmd_ping(path: str) -> int:
    from vmqpy.admin.rpc import call, ping

    cfg = load_config(path)
    if ping(cfg["admin.socket"]):
        print("pong")
        return 0
    try:
        ok, why = call(cfg["admin.socket"], ["ping"], 5.0)
    except (OSError, ValueError, KeyError):
        return not_responding(cfg)
    if ok:  # ready between the two calls
        print("pong")
        return 0
    print(f"Node {cfg['nodename']} is not ready: {why}")  # starting, or syncing with the cluster
    return 1


def cmd_getpid(path: str) -> int:
    from vmqpy.admin.rpc import ping

    cfg = load_config(path)
    pid = read_pid(cfg)
    if pid and ping(cfg["admin.socket"]):
        print(pid)
        return 0
    return not_responding(cfg)


def cmd_chkconfig(path: str) -> int:
    load_config(path, preflight=True)
    print("config is OK")
    return 0


def cmd_config(path: str, what: str) -> int:
    cfg = load_config(path)
    if what == "effective":
        for key, value in cfg.effective():
            print(f"{key} = {value}")
    else:
        print(f"config is OK: {os.path.abspath(path)}")
    return 0


# -- helpers ------------------------------------------------------------------
def read_pid(cfg) -> int | None:
    try:
        with open(pid_file(cfg)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_ulimit() -> None:
    """Raise the open-file limit to the hard limit (every connection is a file), then warn like
    VerneMQ if it is still too low for many clients."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    if soft != resource.RLIM_INFINITY and soft < 65536:
        print(f"!!!!\n!!!! WARNING: ulimit -n is {soft}; 65536 is the recommended minimum.\n!!!!",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vernemq", description="Start and control a vmqpy node.")
    parser.add_argument("--config", default=None, help="vernemq.conf to use (default: $VERNEMQ_CONF)")
    parser.add_argument("command", choices=["console", "start", "stop", "restart", "ping", "chkconfig",
                                            "version", "getpid", "config"])
    parser.add_argument("what", nargs="?", choices=["generate", "effective"], default="generate")
    args = parser.parse_args(argv)
    path = args.config or default_config()
    cmd = args.command
    if cmd == "version":
        print(f"vernemq {__version__} (vmqpy)")
        return 0
    if cmd == "restart":
        cmd_stop(path)
        return cmd_start(path)
    if cmd == "config":
        return cmd_config(path, args.what)
    return {"console": cmd_console, "start": cmd_start, "stop": cmd_stop, "ping": cmd_ping,
            "chkconfig": cmd_chkconfig, "getpid": cmd_getpid}[cmd](path)


if __name__ == "__main__":
    sys.exit(main())
