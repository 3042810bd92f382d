"""Links between processes: the workers of one node and the nodes of a cluster (docs/cluster.md).

Every process is an endpoint, named `NODENAME/K` (worker K of node NODENAME;
a single-process node is worker 0). Each endpoint dials every other endpoint
once and writes to it only on that connection, so each ordered pair has one
ordered stream: what K forwards to J arrives in the order K sent it (MQTT
ordering per publisher -> subscriber pair). J never writes on a connection it
accepted, except to answer an RPC (`ask`: the parent's admin commands, worker
0 gathering the node's figures for HTTP, $SYS and Graphite).

Two transports carry the same records (wire.py): a unix socket between the
workers of one node (marshal), TCP between nodes (msgpack, size-capped, after
an HMAC proof of the cookie both ways). A node's workers share its one
cluster port: the worker that accepts a TCP link hands it, authenticated,
to the worker it is for (T_LINK, the fd passed like a connection).

A stream carries frames: a 4-byte length and a list of records (tuples whose
first item is one of the T_* codes; a T_FRAMES run is a list that grows while
it is the last record queued). Records queued during one loop turn leave in
one frame and one write (DESIGN §3). A connection handed over to its owner
travels as a frame of its own, its fd attached with SCM_RIGHTS; the receiver
keeps received fds in arrival order and takes one per T_HANDOFF or T_LINK.

`barrier()` waits until every connected peer (and one whose first dial is
under way) has processed everything this worker sent before it, and this
worker has received everything the peers queued for it before answering (a
ping out on our stream, its pong back on theirs): a SUBACK sent after a
barrier means every publish routed afterwards sees the subscription, and
retained messages set elsewhere are here. A peer answers after the message
store flush that ends the frames it read with the ping, so `confirm()` (a
barrier to the peers we forwarded QoS 1/2 publishes to) means those
publishes are stored there: the publisher's acks wait for it.
"""

from __future__ import annotations

import array
import logging
import os
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable

import gevent
from gevent import ssl
from gevent.event import Event

from vmqpy.broker.message import Msg
from vmqpy.cluster.wire import (
    MAX_TCP_FRAME,
    FrameReader,
    WireError,
    accept_handshake,
    dial_handshake,
    loads_msgpack,
    pack_marshal,
    pack_msgpack,
)

log = logging.getLogger(__name__)

(T_HELLO, T_SUBS, T_SUB, T_UNSUB, T_PUB, T_META, T_PING, T_PONG, T_HANDOFF, T_RPC, T_STATS,
 T_RECOUNT, T_FRAMES, T_LINK, T_CALL, T_REPLY, T_MOVE, T_MOVED, T_DELIVER, T_SHARED, T_SYNCED,
 T_REPLICA, T_CLOCK) = range(23)
RPC_KINDS = (T_RPC, T_STATS)  # what an RPC connection may ask: an admin command, the ops figures
# What another node may send: no fds, no RPCs, nothing about this node's own processes.
TCP_KINDS = frozenset((T_SUBS, T_SUB, T_UNSUB, T_PUB, T_PING, T_PONG, T_FRAMES, T_META,
                       T_CALL, T_REPLY, T_MOVE, T_MOVED, T_DELIVER, T_SHARED, T_SYNCED, T_REPLICA))
# Besides QoS 1/2 publishes, what waits for a peer that is down: metadata, offline-message copies, and
# sessions moving to it (their old node let them go already)
KEPT = (T_META, T_REPLICA, T_MOVE, T_DELIVER, T_MOVED)
ANSWERS = (T_PONG, T_REPLY)  # what answers a question the peer asked on its stream to us
PARENT = "parent"  # the id an RPC caller (the parent, or worker 0 gathering) says hello with
RECV_SIZE = 1 << 20
LINK_BUFFER = 4 << 20  # SO_SNDBUF of a link (the kernel caps it at net.core.wmem_max): what one
                       # wake-up of a busy receiver takes in, so a saturated worker still drains it
MAX_FDS = 64
RUN_MAX = 256  # frames per T_FRAMES run: below max_online_messages, so a run is delivered whole
DIAL_BACKOFF = (0.02, 0.5)
CONFIRM_TIMEOUT = 30.0  # a peer this slow to store forwarded QoS 1/2 publishes counts as gone
BACKLOG_MAX = 100_000  # records kept for a peer while it is down (restarting)
TCP_DIAL_BACKOFF = (0.1, 2.0)
TCP_CONNECT_TIMEOUT = 3.0
HELLO_TIMEOUT = 5.0  # from accept to the hello: the cookie proven and the target named
HELLO_MAX = 4096
pack = pack_marshal


class UnixTransport:
    """To another worker of this node: its link socket."""

    local = True
    pack = staticmethod(pack_marshal)
    backoff = DIAL_BACKOFF
    buffer = None  # a restarting worker's backlog is bounded by BACKLOG_MAX records only

    def __init__(self, path: str) -> None:
        self.path = path

    def dial(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return None
        return sock


class TcpTransport:
    """To an endpoint of another node: its node's cluster port, the cookie proven both ways."""

    local = False
    pack = staticmethod(pack_msgpack)
    backoff = TCP_DIAL_BACKOFF

    def __init__(self, host: str, port: int, cookie: str, buffer: int | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.cookie = cookie
        self.tls = tls
        self.buffer = buffer  # outgoing_clustering_buffer_size: QoS 1/2 payload bytes kept while down
        self.failure: str | None = None  # the last dial error, logged once until a dial succeeds

    def dial(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), TCP_CONNECT_TIMEOUT)
        except OSError as e:
            return self._failed(f"cannot connect: {e.strerror or e}")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
            if self.tls is not None:
                sock.settimeout(TCP_CONNECT_TIMEOUT)
                sock = self.tls.wrap_socket(sock)
                sock.settimeout(None)
            dial_handshake(sock, self.cookie)
        except (OSError, WireError) as e:
            sock.close()
            return self._failed(str(e))
        if self.failure is not None:
            log.info("cluster link to %s:%s up again", self.host, self.port)
        self.failure = None
        return sock

    def _failed(self, why: str) -> None:
        if why != self.failure:
            log.warning("cluster link to %s:%s: %s", self.host, self.port, why)
        self.failure = why
        return None


def pub_record(msg: Msg, groups: tuple) -> tuple:
    """A publish as it travels (T_PUB); `groups`: the shared groups the receiver delivers it to."""
    return (T_PUB, msg.topic, msg.payload, msg.qos, msg.retain, msg.properties, msg.mountpoint,
            msg.expiry, msg.sender, groups)


def ask(path: str, record: tuple, timeout: float = 30.0) -> object:
    """The parent's (or worker 0's) RPC: one T_RPC or T_STATS record to the worker behind `path`,
    its one answer back (see Links._serve_rpc)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(pack([(T_HELLO, PARENT, None), record]))
        reader = FrameReader()
        while True:
            data = s.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("worker closed the RPC connection")
            frames = reader.feed(data)
            if frames:
                return frames[0][0]


class Peer:
    """The outgoing stream to one other endpoint: dial, sync, then write batches."""

    def __init__(self, links: Links, pid: str, transport: UnixTransport | TcpTransport) -> None:
        self.links = links
        self.pid = pid
        self.transport = transport
        self.local = transport.local
        self._pack = transport.pack
        self.up = False
        self.up_event = Event()
        self.dialed = Event()  # our first dial ended, up or not: before, the peer is being linked, not down
        self.records: list = []
        self.backlog: list = []  # kept while down: QoS 1/2 publishes, retained changes (see send)
        self.answers: list = []  # kept while down, for as long as the peer's stream to us is open
        self._overflowed = False  # the backlog dropped records since the peer went down
        self._backlog_bytes = 0   # payload bytes in it: bounded for other nodes (TcpTransport.buffer)
        self.handoffs: deque[tuple[bytes, int]] = deque()
        self._wake = Event()
        self._armed = False
        self._busy = False  # the writer greenlet is sending: nobody else may write
        self._rest = b""    # what the socket did not take of a flush, for the writer
        self._sock: socket.socket | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._counters = links.counters if not transport.local else None  # cluster bytes: TCP only
        self.up_since = 0.0

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self.dialed.set()  # no dial to wait for any more
        self._close()

    def send(self, record: tuple) -> None:
        """Queue one record for the next frame. While the peer is down (restarting), QoS 1/2
        publishes, metadata changes and offline-message copies wait in the backlog and go out after its sync; the rest
        (QoS 0, subscriptions it re-learns from the sync, pings) is dropped. An answer (pong, call
        reply) waits while the peer's stream to us, which carried the question, is open: the two
        streams of a pair come up independently, and the asker would otherwise wait its full timeout."""
        if self.up:
            self.records.append(record)
            if not self._armed:
                self._armed = True
                self._wake.set()
        elif record[0] in ANSWERS:
            if self.pid in self.links.inbound and len(self.answers) < BACKLOG_MAX:
                self.answers.append(record)
        elif record[0] in KEPT or (record[0] == T_PUB and record[3]):
            size = len(record[2]) if record[0] == T_PUB else 0
            limit = self.transport.buffer
            if len(self.backlog) < BACKLOG_MAX and (limit is None or self._backlog_bytes + size <= limit):
                self.backlog.append(record)
                self._backlog_bytes += size
                return
            if not self._overflowed:  # logged once while down, not per record
                self._overflowed = True
                log.error("%s is down and its backlog is full (%d records, %d bytes): dropping more",
                          self.pid, len(self.backlog), self._backlog_bytes)
            if self._counters is not None:
                self._counters["cluster_bytes_dropped"] += size
            self.links.lost()  # the publishers waiting for confirm() must not ack
        elif record[0] == T_PUB or record[0] == T_FRAMES:
            if self._counters is not None:  # QoS 0 for a node that is down: counted, not kept
                self._counters["cluster_bytes_dropped"] += len(record[2] if record[0] == T_PUB else record[4])

    def flush(self) -> None:
        """Write the queued records now, at the end of a batch, as far as the socket takes them
        without waiting: forwarded messages leave with the batch that routed them, not a loop
        turn later. The writer greenlet sends the rest."""
        if not self.records or self._busy or self._rest or self._sock is None:
            return
        data = self._pack(self.records)
        self.records = []
        if self._counters is not None:
            self._counters["cluster_bytes_sent"] += len(data)
        try:
            sent = self._sock.send(data, 0, 0.0)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the peer is gone: _watch takes the stream down
        if sent < len(data):
            self._rest = data[sent:]
            self._wake.set()

    @property
    def backed_up(self) -> bool:
        """The socket did not take everything: its 4 MiB buffer is full."""
        return bool(self._rest) or self._busy

    def send_frame(self, mountpoint: str, topic: str, sender: tuple, frame: bytes) -> None:
        """Queue a v3 QoS 0 PUBLISH frame to forward byte for byte. Consecutive frames of one
        publisher and topic travel as one run, [T_FRAMES, mountpoint, topic, sender, bytes, count],
        which the receiver routes once and may write to its subscribers as it is."""
        records = self.records
        if records:
            last = records[-1]
            if (last[0] == T_FRAMES and last[2] == topic and last[3] == sender and last[1] == mountpoint
                    and last[5] < RUN_MAX):
                last[4] += frame
                last[5] += 1
                return
        self.send([T_FRAMES, mountpoint, topic, sender, bytearray(frame), 1])

    def handoff(self, record: tuple, fd: int) -> None:
        """Pass an accepted connection's fd with `record`; the peer owns it from now on (we close ours)."""
        self.handoffs.append((self._pack([record]), fd))
        if not self._armed:
            self._armed = True
            self._wake.set()

    # -- the writer greenlet ------------------------------------------------
    def _run(self) -> None:
        delay, most = self.transport.backoff
        while True:
            sock = self.transport.dial()
            if sock is None:
                self.dialed.set()
                gevent.sleep(delay)  # the peer is (re)starting: its socket is not there yet
                delay = min(delay * 2, most)
                continue
            delay = self.transport.backoff[0]
            self._sock = sock
            try:  # the hello goes alone, so the acceptor can read it with a small cap (_serve_tcp)
                sock.sendall(self._pack([(T_HELLO, self.links.me, self.pid)]))
            except OSError:
                self._close()
                gevent.sleep(delay)
                continue
            # Sync first, then live records: built and queued in this same turn, so nothing is missed.
            self.records = [*self.links.sync_records(self.pid), *self.backlog, *self.answers]
            self.backlog = []
            self.answers = []
            self._backlog_bytes = 0
            self._overflowed = False
            self.up = True
            self.up_since = time.monotonic()
            self.up_event.set()
            self.dialed.set()
            self._armed = True
            self._wake.set()
            self.links.peer_up(self.pid)
            watcher = gevent.spawn(self._watch, sock)
            try:
                self._write_loop(sock)
            except OSError:
                pass
            finally:
                watcher.kill(block=False)
                self._down()

    def _write_loop(self, sock: socket.socket) -> None:
        while self.up:
            self._wake.wait()
            self._wake.clear()
            self._armed = False
            self._busy = True
            try:
                if self._rest:
                    rest, self._rest = self._rest, b""
                    sock.sendall(rest)
                if self.records:
                    batch, self.records = self.records, []
                    data = self._pack(batch)
                    if self._counters is not None:
                        self._counters["cluster_bytes_sent"] += len(data)
                    sock.sendall(data)
                while self.handoffs:
                    frame, fd = self.handoffs.popleft()
                    try:
                        sent = socket.send_fds(sock, [frame], [fd])
                        if sent < len(frame):
                            sock.sendall(frame[sent:])
                    finally:
                        os.close(fd)
            finally:
                self._busy = False
            self.links.check_drained()

    def fail(self, why: str) -> None:
        """Take the stream down from outside (a silent peer): the writer and the watcher wake up
        with an error, and the dialing starts again."""
        log.warning("cluster link to %s: %s, taking it down", self.pid, why)
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watch(self, sock: socket.socket) -> None:
        """The peer never writes here: EOF or an error means it is gone."""
        try:
            sock.recv(1)
        except OSError:
            pass
        self.up = False
        self._wake.set()

    def _down(self) -> None:
        was_up = self.up_event.is_set()
        self.up = False
        self.up_event.clear()
        self.records = []
        self._rest = b""
        while self.handoffs:
            os.close(self.handoffs.popleft()[1])  # the client reconnects and lands on the new owner
        self._close()
        self.links.check_drained()
        if was_up:
            self.links.peer_down(self.pid)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Links:
    """This endpoint's side of the mesh: its listening sockets, its peers, the barrier."""

    def __init__(self, me: str, paths: list[str], index: int, dispatch: Callable[[str, list, deque], None],
                 sync_records: Callable[[str], list], rpc: Callable[[tuple], object],
                 batch_done: Callable[[], None], cookie: str = "", counters: dict[str, int] | None = None) -> None:
        self.me = me
        self.index = index                # ours among this node's workers
        self.paths = paths                # the link socket of each worker of this node
        self.cookie = cookie
        self.tls: ssl.SSLContext | None = None  # a listener.vmqs: other nodes' links are TLS
        self.dispatch = dispatch          # (from endpoint, records, received fds)
        self.sync_records = sync_records  # what a (re)connected peer must learn first
        self.rpc = rpc                    # an RPC_KINDS record -> its answer
        self.batch_done = batch_done      # after each received frame batch (store flush)
        self.on_peer_up: Callable[[str], None] | None = None
        self.on_peer_down: Callable[[str], None] | None = None
        self.heard: dict[str, float] = {}  # endpoint -> when its stream to us last brought bytes
        self.peers: dict[str, Peer] = {}
        self.local: set[str] = set()      # the other workers of this node
        self.inbound: set[str] = set()    # endpoints whose stream to us is connected
        self.synced = Event()             # every worker of this node connected both ways
        self.drained = Event()            # no link backed up (see flush)
        self.drained.set()
        self._servers: list[socket.socket] = []
        self._greenlets: list[gevent.Greenlet] = []
        self._seq = 0
        self._waiting: dict[int, tuple[Event, set[str], set[str]]] = {}  # seq -> done, to answer, gone
        self.qos_sent: dict[str, int] = {}  # QoS 1/2 publishes queued to each peer, ever
        self._stored: dict[str, int] = {}   # of those, how many the peer confirmed stored
        self.losses = 0  # times queued records may have been lost: a peer went down, a backlog overflowed
        self.counters = counters if counters is not None else defaultdict(int)  # the node's metrics

    def worker_id(self, k: int) -> str:
        return f"{self.me.rpartition('/')[0]}/{k}"

    # -- lifecycle ----------------------------------------------------------
    def listen(self) -> None:
        path = self.paths[self.index]
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            server.bind(path)
        finally:
            os.umask(old_umask)
        server.listen(64)
        self._servers.append(server)
        self._greenlets.append(gevent.spawn(self._accept_loop, server, self._serve))

    def listen_tcp(self, server: socket.socket) -> None:
        """Accept other nodes' links on the cluster port (shared by this node's workers)."""
        self._servers.append(server)
        self._greenlets.append(gevent.spawn(self._accept_loop, server, self._serve_tcp))

    def connect(self) -> None:
        for k, path in enumerate(self.paths):
            if k != self.index:
                self.add_peer(self.worker_id(k), UnixTransport(path))
        self.check_synced()

    def add_peer(self, pid: str, transport: UnixTransport | TcpTransport) -> None:
        if pid in self.peers or pid == self.me:
            return
        peer = self.peers[pid] = Peer(self, pid, transport)
        if transport.local:
            self.local.add(pid)
        self.qos_sent.setdefault(pid, 0)
        self._stored.setdefault(pid, 0)
        peer.start()

    def remove_peer(self, pid: str) -> None:
        """An endpoint of a node that left: no stream to it any more, nothing waits for it."""
        peer = self.peers.pop(pid, None)
        if peer is None:
            return
        peer.stop()
        self.local.discard(pid)
        self.qos_sent.pop(pid, None)
        self._stored.pop(pid, None)
        self.peer_down(pid)

    def stop(self) -> None:
        for peer in self.peers.values():
            peer.stop()
        for g in self._greenlets:
            g.kill(block=False)
        for server in self._servers:
            server.close()
        self._servers = []

    def complete(self) -> bool:
        """Every stream between this node's workers up: ours to each, and each one's to us."""
        return all(self.peers[k].up for k in self.local) and self.inbound >= self.local

    def check_synced(self) -> None:
        if self.complete():
            self.synced.set()

    def peer_up(self, pid: str) -> None:
        self.check_synced()
        if self.on_peer_up is not None:
            self.on_peer_up(pid)

    # -- sending ------------------------------------------------------------
    def broadcast(self, record: tuple, local_only: bool = False) -> None:
        for pid, peer in self.peers.items():
            if not local_only or pid in self.local:
                peer.send(record)

    def flush(self) -> bool:
        """Write what the ending batch queued for other endpoints (Peer.flush). True if a link is
        backed up: the caller reads no more until `drained` is set (backpressure, so that a peer
        that cannot keep up holds the publishers back instead of growing the sender's memory)."""
        backed_up = False
        for peer in self.peers.values():
            if peer.records:
                peer.flush()
            if peer.backed_up:
                backed_up = True
        if backed_up:
            self.drained.clear()
        return backed_up

    def check_drained(self) -> None:
        if not self.drained.is_set() and not any(p.backed_up for p in self.peers.values()):
            self.drained.set()

    def barrier(self, timeout: float = 5.0, peers: set[str] | None = None) -> bool:
        """Return once every connected peer (or each of `peers`) has answered a ping queued now
        (see module doc). False: one of them was or went down, or did not answer in time. A peer
        linked a moment ago (a node joining) is waited for until its first dial ends: otherwise a
        SUBACK could go out before it has our subscriptions, which its stream's sync brings."""
        deadline = time.monotonic() + timeout
        if peers is None:
            for p in [p for p in self.peers.values() if not p.dialed.is_set()]:
                p.dialed.wait(max(0.0, deadline - time.monotonic()))
        up = {k for k, p in self.peers.items() if p.up and (peers is None or k in peers)}
        if peers is not None and up != peers:
            return False
        if not up:
            return True
        self._seq += 1
        seq = self._seq
        done, gone = Event(), set()
        self._waiting[seq] = (done, set(up), gone)
        for k in up:
            self.peers[k].send((T_PING, seq))
        answered = done.wait(max(0.0, deadline - time.monotonic()))
        if not answered:
            log.warning("%s did not answer a barrier within %ss", sorted(up), timeout)
        self._waiting.pop(seq, None)
        return answered and not gone

    def confirm(self, losses: int, timeout: float = CONFIRM_TIMEOUT) -> bool:
        """Wait until each peer has stored the QoS 1/2 publishes queued to it so far; a peer that
        is down (restarting) is waited for, its backlog goes out after its sync. False: records
        may have been lost since `losses` was read (at the start of the caller's batch), or a
        peer did not answer in time; nobody may ack what the batch forwarded."""
        if self.losses != losses:
            return False
        due = {k: n for k, n in self.qos_sent.items() if n > self._stored[k]}
        if not due:
            return True
        deadline = time.monotonic() + timeout
        for k in due:
            peer = self.peers.get(k)
            if peer is None or not peer.up_event.wait(max(0.0, deadline - time.monotonic())):
                return False
        if not self.barrier(max(0.0, deadline - time.monotonic()), set(due)) or self.losses != losses:
            return False
        for k, n in due.items():
            if k in self._stored:
                self._stored[k] = max(self._stored[k], n)
        return True

    def lost(self) -> None:
        """Records queued for a peer may not reach it: every batch running now fails its confirm."""
        self.losses += 1

    def _ponged(self, k: str, seq: int) -> None:
        for s in [s for s in self._waiting if s <= seq]:
            self._release(s, k)

    def _release(self, seq: int, k: str, down: bool = False) -> None:
        done, pending, gone = self._waiting[seq]
        if k in pending and down:
            gone.add(k)
        pending.discard(k)
        if not pending:
            done.set()
            del self._waiting[seq]

    def peer_down(self, k: str) -> None:
        self.lost()  # what was written to it and not yet confirmed may be gone with it
        for s in list(self._waiting):
            self._release(s, k, down=True)
        if self.on_peer_down is not None:
            self.on_peer_down(k)

    def heartbeats(self, timeout: float) -> None:
        """Run forever: ping every other node's endpoint each timeout/3 (answered on its stream to
        us, like any ping) and take down a stream whose endpoint sent nothing for `timeout`: a
        stopped process or a cut cable keeps TCP up, but not its answers."""
        while True:
            gevent.sleep(timeout / 3)
            now = time.monotonic()
            for pid, peer in list(self.peers.items()):
                if peer.local or not peer.up:
                    continue
                silent = now - max(self.heard.get(pid, 0.0), peer.up_since)
                if silent > timeout:
                    peer.fail(f"no answer for {silent:.1f}s")
                else:
                    peer.send((T_PING, 0))

    # -- receiving ----------------------------------------------------------
    def _accept_loop(self, server: socket.socket, serve: Callable) -> None:
        while True:
            try:
                conn, addr = server.accept()
            except OSError:
                return  # closed by stop()
            self._greenlets.append(gevent.spawn(serve, conn, addr))
            self._greenlets = [g for g in self._greenlets if not g.dead]

    def _serve_tcp(self, conn: socket.socket, addr) -> None:
        """A link from another node: the cookie proven, then a hello naming the endpoint it is for;
        ours, or handed (fd and bytes read) to the worker of this node it names."""
        try:
            # Our small handshake writes (after TLS 1.3's session tickets) must not wait for the
            # dialer's delayed ACK (Nagle): that held every TLS link back ~40 ms.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with gevent.Timeout(HELLO_TIMEOUT, WireError("no hello in time")):
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                accept_handshake(conn, self.cookie)
                hello, data = _read_hello(conn)
            target = _hello(hello)[1]
        except (OSError, WireError) as e:
            self._refuse(conn, addr, e)
            return
        if target == self.me:
            self._serve(conn, addr, data, tcp=True)
        elif target in self.local and self.peers[target].up:
            if self.tls is None:
                self.peers[target].handoff((T_LINK, data, tuple(addr[:2])), conn.detach())
            else:  # TLS state cannot move to another process: relay the plain bytes to it
                mine, theirs = socket.socketpair()
                self.peers[target].handoff((T_LINK, data, tuple(addr[:2])), theirs.detach())
                _relay(conn, mine)
        else:
            self._refuse(conn, addr, f"no endpoint {target!r} here")

    def adopt_tcp(self, fd: int, preread: bytes, addr: tuple) -> None:
        """A TCP link the worker that accepted it handed to us (see _serve_tcp)."""
        from gevent import socket as gsocket

        conn = gsocket.socket(fileno=fd)
        self._greenlets.append(gevent.spawn(self._serve, conn, addr, preread, True))

    def queued(self) -> int:
        """Records waiting to go out on every link (the cluster_link_queue gauge)."""
        return sum(len(p.records) + len(p.backlog) for p in self.peers.values())

    def _refuse(self, conn: socket.socket, addr, why) -> None:
        self.counters["cluster_connections_refused"] += 1
        log.warning("cluster connection from %s refused: %s", _addr(addr), why)
        conn.close()

    def _serve(self, conn: socket.socket, addr=None, preread: bytes = b"", tcp: bool = False) -> None:
        reader = FrameReader(loads_msgpack, MAX_TCP_FRAME) if tcp else FrameReader()
        fds: deque[int] = deque()
        peer: str | None = None
        data = preread
        try:
            while True:
                if not data:
                    if tcp:  # no fds from other nodes (and a TLS socket has no recvmsg)
                        data, anc = conn.recv(RECV_SIZE), ()
                    else:
                        data, anc, _flags, _sender = conn.recvmsg(RECV_SIZE, socket.CMSG_SPACE(MAX_FDS * 4))
                    for level, kind, payload in anc:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
                    if not data:
                        return
                if tcp:
                    self.counters["cluster_bytes_received"] += len(data)
                    if peer is not None:
                        self.heard[peer] = time.monotonic()
                pings: list[str] = []
                frames, data = reader.feed(data), b""
                for records in frames:
                    if peer is None:
                        peer = _hello(records)[0]
                        if peer == PARENT and not tcp:
                            return self._serve_rpc(conn, records[1:])
                        self.inbound.add(peer)
                        self.heard[peer] = time.monotonic()
                        records = records[1:]
                        if not records:
                            continue
                    if tcp and any(r[0] not in TCP_KINDS for r in records):
                        raise WireError("a record kind other nodes may not send")
                    self._handle(peer, records, fds, pings)
                self.batch_done()
                if pings and (answer := self.peers.get(peer)) is not None:
                    for seq in pings:  # after the store flush: what came before the ping is stored
                        answer.send((T_PONG, seq))
                if peer is not None and not self.synced.is_set():
                    self.check_synced()
        except OSError:
            pass
        except (WireError, ValueError, TypeError, KeyError, IndexError) as e:
            # a peer that breaks the protocol loses its link, never the node
            log.error("cluster link from %s (%s) closed: %s", peer, _addr(addr), e)
        finally:
            conn.close()
            for fd in fds:
                os.close(fd)
            if peer is not None and peer != PARENT:
                self.inbound.discard(peer)  # its filters stay: what is routed to it meanwhile waits (Peer.send)
                if (asker := self.peers.get(peer)) is not None:
                    asker.answers.clear()  # nobody waits for them now (a restarted peer counts anew)
                if peer in self.local:
                    self.synced.clear()

    def _handle(self, peer: str, records: list, fds: deque, pings: list[int]) -> None:
        """Apply records in order; the seqs of pings to answer go to `pings`."""
        start = 0
        for i, rec in enumerate(records):
            kind = rec[0]
            if kind == T_PING or kind == T_PONG:
                if start < i:
                    self.dispatch(peer, records[start:i], fds)  # what came before is applied first
                start = i + 1
                if kind == T_PONG:
                    self._ponged(peer, rec[1])
                else:
                    pings.append(rec[1])
        if start < len(records):
            self.dispatch(peer, records[start:] if start else records, fds)

    def _serve_rpc(self, conn: socket.socket, records: list) -> None:
        for rec in records:
            if rec[0] in RPC_KINDS:
                conn.sendall(pack([self.rpc(rec)]))


def _relay(tls: socket.socket, plain: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    from gevent import socket as gsocket

    plain = gsocket.socket(fileno=plain.detach())

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(RECV_SIZE):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    back = gevent.spawn(pump, plain, tls)
    pump(tls, plain)
    back.join()
    tls.close()
    plain.close()


def _read_hello(conn: socket.socket) -> tuple[list, bytes]:
    """The dialer's hello (a frame of its own, at most HELLO_MAX bytes), and every byte read: the
    frames that may follow it in the same reads are not held to that cap."""
    data = b""
    while True:
        if len(data) >= 4:
            size = int.from_bytes(data[:4], "big")
            if size > HELLO_MAX:
                raise WireError(f"a hello of {size} bytes, more than {HELLO_MAX}")
            if len(data) >= 4 + size:
                return loads_msgpack(memoryview(data)[4:4 + size]), data
        chunk = conn.recv(RECV_SIZE)
        if not chunk:
            raise WireError("closed before its hello")
        data += chunk


def _hello(records: list) -> tuple[str, str | None]:
    """(from, to) of a stream's first record."""
    first = records[0] if records else None
    if (not isinstance(first, tuple | list) or len(first) != 3 or first[0] != T_HELLO
            or not isinstance(first[1], str)):
        raise WireError("the first record is not a hello")
    return first[1], first[2]


def _addr(addr) -> str:
    if isinstance(addr, tuple | list) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr or "a local worker")
