"""Real database servers for the vmq_diversity tests, from Debian's packages (test/install-deps.sh):
PostgreSQL, MariaDB, Redis and memcached, each on a free port in a temp dir, stoppable and
restartable mid-test (the "database went away" cases).

PostgreSQL refuses to run as root: as root its processes run as the `postgres` user the
package creates, in a directory handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from broker import free_port, wait_until


def _binary(*candidates: str) -> str | None:
    for c in candidates:
        for path in sorted(glob.glob(c), reverse=True):
            if os.access(path, os.X_OK):
                return path
        found = shutil.which(c)
        if found:
            return found
    return None


def need(*candidates: str) -> str:
    path = _binary(*candidates)
    if path is None:
        pytest.skip(f"{candidates[0]} is not installed (test/install-deps.sh installs it)")
    return path


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """A server process on 127.0.0.1:port; start() waits until it accepts connections."""

    stop_signal = signal.SIGTERM

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"vmq-{name}-"))
        self.proc: subprocess.Popen | None = None
        self.user: str | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Server:
        log = open(self.dir / "server.log", "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     user=self.user)
        wait_until(lambda: self.proc.poll() is not None or self.ready(), 60, f"{self.name} start")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{(self.dir / 'server.log').read_text()}")
        return self

    def ready(self) -> bool:
        return _listening(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        wait_until(lambda: not _listening(self.port), 10, f"{self.name} stop")

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres(Server):
    stop_signal = signal.SIGINT  # fast shutdown: SIGTERM would wait for the node's pooled sessions
    user_name = "vmq"
    password = "vmq-secret"
    database = "vernemq_db"

    def __init__(self) -> None:
        bindir = os.path.dirname(need("/usr/lib/postgresql/*/bin/initdb", "initdb"))
        super().__init__("postgres")
        self.bindir = bindir
        self.data = self.dir / "data"
        if os.getuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        (self.dir / "pw").write_text(self.password + "\n")
        if self.user:
            os.chown(self.dir / "pw", pwd.getpwnam("postgres").pw_uid, -1)
        subprocess.run([f"{bindir}/initdb", "-D", str(self.data), "-U", self.user_name, "-A", "scram-sha-256",
                        "--pwfile", str(self.dir / "pw"), "-E", "UTF8"], check=True, capture_output=True,
                       user=self.user, cwd=self.dir)

    def argv(self) -> list[str]:
        return [f"{self.bindir}/postgres", "-D", str(self.data), "-p", str(self.port), "-c",
                "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off"]

    def ready(self) -> bool:
        if not _listening(self.port):
            return False
        try:
            self.connect(dbname="postgres").close()
            return True
        except Exception:
            return False

    def connect(self, dbname: str | None = None):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user_name, password=self.password,
                               dbname=dbname or self.database, autocommit=True)

    def create_database(self) -> None:
        with self.connect(dbname="postgres") as conn:
            conn.execute(f"CREATE DATABASE {self.database}")
        with self.connect() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")


class MariaDB(Server):
    user_name = "vmq"
    password = "vmq-secret"
    database = "vernemq_db"

    def __init__(self) -> None:
        install = need("mariadb-install-db", "mysql_install_db")
        self.mysqld = need("/usr/sbin/mariadbd", "mariadbd", "/usr/sbin/mysqld")
        super().__init__("mariadb")
        self.sock = self.dir / "s"
        args = [install, f"--datadir={self.dir / 'data'}", "--auth-root-authentication-method=normal",
                "--skip-test-db"]
        if os.getuid() == 0:
            args.append("--user=root")
        subprocess.run(args, check=True, capture_output=True, cwd=self.dir)

    def argv(self) -> list[str]:
        args = [self.mysqld, "--no-defaults", f"--datadir={self.dir / 'data'}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.sock}", f"--pid-file={self.dir / 'pid'}",
                "--skip-log-bin", "--innodb-buffer-pool-size=16M"]
        return args + (["--user=root"] if os.getuid() == 0 else [])

    def admin_connect(self):
        import pymysql

        return pymysql.connect(unix_socket=str(self.sock), user="root", autocommit=True)

    def connect(self):
        import pymysql

        return pymysql.connect(host="127.0.0.1", port=self.port, user=self.user_name, password=self.password,
                               database=self.database, autocommit=True)

    def create_database(self) -> None:
        with self.admin_connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.database}")
            cur.execute(f"CREATE USER '{self.user_name}'@'%' IDENTIFIED BY '{self.password}'")
            cur.execute(f"GRANT ALL ON {self.database}.* TO '{self.user_name}'@'%'")


class Redis(Server):
    def __init__(self) -> None:
        self.binary = need("redis-server")
        super().__init__("redis")

    def argv(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "no", "--dir", str(self.dir)]

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)


class Memcached(Server):
    def __init__(self) -> None:
        self.binary = need("memcached")
        super().__init__("memcached")

    def argv(self) -> list[str]:
        args = [self.binary, "-p", str(self.port), "-l", "127.0.0.1", "-U", "0"]
        return args + (["-u", "root"] if os.getuid() == 0 else [])
