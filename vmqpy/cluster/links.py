"""Links between the worker processes of one node (nr_of_workers > 1; docs/workers.md).

Every worker listens on its own unix socket. Worker K dials every other worker
J once and writes to J only on that connection, so each ordered pair of
workers has one ordered stream: what K forwards to J arrives in the order K
sent it (MQTT ordering per publisher -> subscriber pair). J never writes on a
connection it accepted, except to answer an RPC (`ask`: the parent's admin
commands, worker 0 gathering the node's figures for HTTP, $SYS and Graphite).

A stream carries frames: a 4-byte length and a marshal'ed list of records
(tuples whose first item is one of the T_* codes; a T_FRAMES run is a list
that grows while it is the last record queued). Records queued during one
loop turn leave in one frame and one write (DESIGN §3). A connection handed
over to its owner travels as a frame of its own, its fd attached with
SCM_RIGHTS; the receiver keeps received fds in arrival order and takes one per
T_HANDOFF record.

`barrier()` waits until every connected peer has processed everything this
worker sent before it, and this worker has received everything the peers
queued for it before answering (a ping out on our stream, its pong back on
theirs): a SUBACK sent after a barrier means every publish routed afterwards
sees the subscription, and retained messages set elsewhere are here. A peer
answers after the message store flush that ends the frames it read with the
ping, so `confirm()` (a barrier to the peers we forwarded QoS 1/2 publishes
to) means those publishes are stored there: the publisher's acks wait for it.
"""

from __future__ import annotations

import array
import logging
import marshal
import os
import socket
import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.event import Event

log = logging.getLogger(__name__)

(T_HELLO, T_SUBS, T_SUB, T_UNSUB, T_PUB, T_RETAIN, T_PING, T_PONG, T_HANDOFF, T_RPC, T_STATS,
 T_RECOUNT, T_FRAMES) = range(13)
RPC_KINDS = (T_RPC, T_STATS)  # what an RPC connection may ask: an admin command, the ops figures
PARENT = -1  # the index an RPC caller (the parent, or worker 0 gathering) says hello with
RECV_SIZE = 1 << 20
LINK_BUFFER = 4 << 20  # SO_SNDBUF of a link (the kernel caps it at net.core.wmem_max): what one
                       # wake-up of a busy receiver takes in, so a saturated worker still drains it
MAX_FDS = 64
RUN_MAX = 256  # frames per T_FRAMES run: below max_online_messages, so a run is delivered whole
DIAL_BACKOFF = (0.02, 0.5)
CONFIRM_TIMEOUT = 30.0  # a peer this slow to store forwarded QoS 1/2 publishes counts as gone
BACKLOG_MAX = 100_000  # records kept for a peer while it is down (restarting)


def pack(records: list) -> bytes:
    body = marshal.dumps(records)
    return len(body).to_bytes(4, "big") + body


class FrameReader:
    """Splits a byte stream into record lists; keeps a partial frame as chunks (no quadratic joins)."""

    __slots__ = ("_chunks", "_have", "_need")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 4

    def feed(self, data: bytes) -> list[list]:
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks = []
        out = []
        view = memoryview(data)
        n = len(data)
        i = 0
        need = 4
        while n - i >= 4:
            end = i + 4 + int.from_bytes(view[i:i + 4], "big")
            if end > n:
                need = end - i
                break
            out.append(marshal.loads(view[i + 4:end]))
            i = end
        if i < n:
            self._chunks = [data[i:]]
            self._have = n - i
            self._need = max(need, 4)
        return out


def ask(path: str, record: tuple, timeout: float = 30.0) -> object:
    """The parent's (or worker 0's) RPC: one T_RPC or T_STATS record to the worker behind `path`,
    its one answer back (see Links._serve_rpc)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(pack([(T_HELLO, PARENT), record]))
        reader = FrameReader()
        while True:
            data = s.recv(RECV_SIZE)
            if not data:
                raise ConnectionError("worker closed the RPC connection")
            frames = reader.feed(data)
            if frames:
                return frames[0][0]


def request(path: str, argv: list[str], timeout: float = 30.0) -> tuple:
    """Run an admin command on the worker behind `path`: (ok, 'table', rows, columns) or (ok, 'text', out)."""
    return ask(path, (T_RPC, argv), timeout)


class Peer:
    """The outgoing stream to one other worker: dial, sync, then write batches."""

    def __init__(self, links: Links, index: int, path: str) -> None:
        self.links = links
        self.index = index
        self.path = path
        self.up = False
        self.up_event = Event()
        self.records: list = []
        self.backlog: list = []  # kept while down: QoS 1/2 publishes, retained changes (see send)
        self._overflowed = False  # the backlog dropped records since the peer went down
        self.handoffs: deque[tuple[bytes, int]] = deque()
        self._wake = Event()
        self._armed = False
        self._busy = False  # the writer greenlet is sending: nobody else may write
        self._rest = b""    # what the socket did not take of a flush, for the writer
        self._sock: socket.socket | None = None
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self._close()

    def send(self, record: tuple) -> None:
        """Queue one record for the next frame. While the peer is down (restarting), QoS 1/2
        publishes and retained changes wait in the backlog and go out after its sync; the rest
        (QoS 0, subscriptions it re-learns from the sync, pings) is dropped."""
        if self.up:
            self.records.append(record)
            if not self._armed:
                self._armed = True
                self._wake.set()
        elif record[0] == T_RETAIN or (record[0] == T_PUB and record[3]):
            if len(self.backlog) < BACKLOG_MAX:
                self.backlog.append(record)
                return
            if not self._overflowed:  # logged once while down, not per record
                self._overflowed = True
                log.error("worker %d is down and %d records wait for it: dropping more", self.index, BACKLOG_MAX)
            self.links.lost()  # the publishers waiting for confirm() must not ack

    def flush(self) -> None:
        """Write the queued records now, at the end of a batch, as far as the socket takes them
        without waiting: forwarded messages leave with the batch that routed them, not a loop
        turn later. The writer greenlet sends the rest."""
        if not self.records or self._busy or self._rest or self._sock is None:
            return
        data = pack(self.records)
        self.records = []
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
        self.handoffs.append((pack([record]), fd))
        if not self._armed:
            self._armed = True
            self._wake.set()

    # -- the writer greenlet ------------------------------------------------
    def _run(self) -> None:
        delay = DIAL_BACKOFF[0]
        while True:
            sock = self._dial()
            if sock is None:
                gevent.sleep(delay)  # the peer is (re)starting: its socket is not there yet
                delay = min(delay * 2, DIAL_BACKOFF[1])
                continue
            delay = DIAL_BACKOFF[0]
            self._sock = sock
            # Sync first, then live records: built and queued in this same turn, so nothing is missed.
            self.records = [(T_HELLO, self.links.index), *self.links.sync_records(self.index), *self.backlog]
            self.backlog = []
            self._overflowed = False
            self.up = True
            self.up_event.set()
            self._armed = True
            self._wake.set()
            self.links.check_synced()
            watcher = gevent.spawn(self._watch, sock)
            try:
                self._write_loop(sock)
            except OSError:
                pass
            finally:
                watcher.kill(block=False)
                self._down()

    def _dial(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LINK_BUFFER)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            return None
        return sock

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
                    sock.sendall(pack(batch))
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
            self.links.peer_down(self.index)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Links:
    """This worker's side of the mesh: its listening socket, its peers, the barrier."""

    def __init__(self, index: int, paths: list[str], dispatch: Callable[[int, list, deque], None],
                 sync_records: Callable[[int], list], rpc: Callable[[tuple], object],
                 batch_done: Callable[[], None]) -> None:
        self.index = index
        self.paths = paths
        self.dispatch = dispatch          # (from worker, records, received fds)
        self.sync_records = sync_records  # what a (re)connected peer must learn first
        self.rpc = rpc                    # an RPC_KINDS record -> its answer
        self.batch_done = batch_done      # after each received frame batch (store flush)
        self.peers: dict[int, Peer] = {k: Peer(self, k, p) for k, p in enumerate(paths) if k != index}
        self.inbound: set[int] = set()    # workers whose stream to us is connected
        self.synced = Event()             # every peer connected both ways
        self.drained = Event()            # no link backed up (see flush)
        self.drained.set()
        self._server: socket.socket | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._seq = 0
        self._waiting: dict[int, tuple[Event, set[int], set[int]]] = {}  # seq -> done, to answer, gone
        self.qos_sent = dict.fromkeys(self.peers, 0)  # QoS 1/2 publishes queued to each peer, ever
        self._stored = dict.fromkeys(self.peers, 0)   # of those, how many the peer confirmed stored
        self.losses = 0  # times queued records may have been lost: a peer went down, a backlog overflowed

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
        self._server = server
        self._greenlets.append(gevent.spawn(self._accept_loop, server))

    def connect(self) -> None:
        for peer in self.peers.values():
            peer.start()
        self.check_synced()

    def stop(self) -> None:
        for peer in self.peers.values():
            peer.stop()
        for g in self._greenlets:
            g.kill(block=False)
        if self._server is not None:
            self._server.close()
            self._server = None

    def complete(self) -> bool:
        """Every stream up: ours to each peer, and each peer's to us."""
        return all(p.up for p in self.peers.values()) and self.inbound >= set(self.peers)

    def check_synced(self) -> None:
        if self.complete():
            self.synced.set()

    # -- sending ------------------------------------------------------------
    def broadcast(self, record: tuple) -> None:
        for peer in self.peers.values():
            peer.send(record)

    def flush(self) -> bool:
        """Write what the ending batch queued for other workers (Peer.flush). True if a link is
        backed up: the caller reads no more until `drained` is set (backpressure, so that a worker
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

    def barrier(self, timeout: float = 5.0, peers: set[int] | None = None) -> bool:
        """Return once every connected peer (or each of `peers`) has answered a ping queued now
        (see module doc). False: one of them was or went down, or did not answer in time."""
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
        answered = done.wait(timeout)
        if not answered:
            log.warning("workers %s did not answer a barrier within %ss", sorted(up), timeout)
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
            if not self.peers[k].up_event.wait(max(0.0, deadline - time.monotonic())):
                return False
        if not self.barrier(max(0.0, deadline - time.monotonic()), set(due)) or self.losses != losses:
            return False
        for k, n in due.items():
            self._stored[k] = max(self._stored[k], n)
        return True

    def lost(self) -> None:
        """Records queued for a peer may not reach it: every batch running now fails its confirm."""
        self.losses += 1

    def _ponged(self, k: int, seq: int) -> None:
        for s in [s for s in self._waiting if s <= seq]:
            self._release(s, k)

    def _release(self, seq: int, k: int, down: bool = False) -> None:
        done, pending, gone = self._waiting[seq]
        if k in pending and down:
            gone.add(k)
        pending.discard(k)
        if not pending:
            done.set()
            del self._waiting[seq]

    def peer_down(self, k: int) -> None:
        self.lost()  # what was written to it and not yet confirmed may be gone with it
        for s in list(self._waiting):
            self._release(s, k, down=True)

    # -- receiving ----------------------------------------------------------
    def _accept_loop(self, server: socket.socket) -> None:
        while True:
            conn, _ = server.accept()
            self._greenlets.append(gevent.spawn(self._serve, conn))
            self._greenlets = [g for g in self._greenlets if not g.dead]

    def _serve(self, conn: socket.socket) -> None:
        reader = FrameReader()
        fds: deque[int] = deque()
        peer: int | None = None
        try:
            while True:
                data, anc, _flags, _addr = conn.recvmsg(RECV_SIZE, socket.CMSG_SPACE(MAX_FDS * 4))
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
                if not data:
                    return
                pings: list[int] = []
                for records in reader.feed(data):
                    if peer is None:
                        peer = records[0][1]
                        if peer == PARENT:
                            return self._serve_rpc(conn, records[1:])
                        self.inbound.add(peer)
                        records = records[1:]
                    self._handle(peer, records, fds, pings)
                self.batch_done()
                if pings and (answer := self.peers.get(peer)) is not None:
                    for seq in pings:  # after the store flush: what came before the ping is stored
                        answer.send((T_PONG, seq))
                if peer is not None and not self.synced.is_set():
                    self.check_synced()
        except OSError:
            pass
        finally:
            conn.close()
            for fd in fds:
                os.close(fd)
            if peer is not None and peer != PARENT:
                self.inbound.discard(peer)  # its filters stay: what is routed to it meanwhile waits (Peer.send)
                self.synced.clear()

    def _handle(self, peer: int, records: list, fds: deque, pings: list[int]) -> None:
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
