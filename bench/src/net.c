/* loadgen: connections, the epoll loop and the MQTT flows. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"
#include "mqtt.h"

#define RX_CHUNK (64 * 1024)  /* one recv parses hundreds of frames */
#define TX_BATCH (32 * 1024)  /* a publisher hands the kernel this much per turn */
#define MAX_EVENTS 1024

static int ep;
static volatile sig_atomic_t terminated; /* SIGTERM: end the run now, report what was done */

static void on_sigterm(int sig)
{
    (void)sig;
    terminated = 1;
}
static uint64_t now;          /* cached once per loop turn */
static uint8_t *rx;           /* shared receive scratch; only leftovers are per conn */

static void die_oom(void)
{
    fputs("loadgen: out of memory\n", stderr);
    exit(2);
}

static uint8_t *reserve(struct buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        if (!(b->p = realloc(b->p, cap)))
            die_oom();
        b->cap = cap;
    }
    return b->p + b->len;
}

static void arm(struct conn *c, int out)
{
    if (c->out_armed == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)(c - R.conns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = (uint8_t)out;
}

static void close_conn(struct conn *c, const char *why)
{
    if (c->state == S_CLOSED)
        return;
    if (why) {
        R.n.disconnects++;
        if (R.n.disconnects <= 5)
            fprintf(stderr, "loadgen: connection %ld closed: %s\n", (long)(c - R.conns), why);
    }
    if (c->role == R_CHURN) {
        R.churn_done++; /* its slot takes the next client id (churn_step) */
        c->again = 0;
    } else if (c->state == S_READY) {
        R.ready--;
    } else if (c->state != S_NEW) {
        R.connecting--; /* refused or dropped before it was ready: its connect slot is free */
    }
    c->state = S_CLOSED;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void flush(struct conn *c)
{
    while (c->out.off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out.off += (size_t)n;
            c->last_tx = now;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            arm(c, 1);
            return;
        } else {
            close_conn(c, strerror(errno));
            return;
        }
    }
    c->out.off = c->out.len = 0;
    arm(c, 0);
}

static void queue_ack(struct conn *c, int type, uint16_t pid)
{
    c->out.len += mqtt_ack(reserve(&c->out, 4), type, pid);
}

/* ---- connecting ---------------------------------------------------------- */

static int bad_password(const struct conn *c);
static void mark_ready(struct conn *c);

static int start_connect(struct conn *c, int i)
{
    struct config *cfg = &R.cfg;
    int sub = c->role == R_SUB;
    int port = sub && cfg->sub_port ? cfg->sub_port : cfg->port;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, sub && cfg->sub_host ? cfg->sub_host : cfg->host, &sa.sin_addr);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (cfg->nbinds) {
        /* the port is picked at connect(), per 4-tuple: >28k conns per source */
        struct sockaddr_in src = {.sin_family = AF_INET};
        inet_pton(AF_INET, cfg->binds[(c->role == R_CHURN ? c->idx : i) % cfg->nbinds], &src.sin_addr);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = S_TCP;
    c->out_armed = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void on_tcp_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        close_conn(c, strerror(err));
        return;
    }
    char id[64], wrong[256];
    static const char tag[] = {'p', 's', 'i', 'c', 'w'};
    snprintf(id, sizeof id, "%s-%c%d", R.cfg.id_prefix, tag[c->role], c->idx);
    const char *pass = R.cfg.password;
    if (pass && bad_password(c)) {
        snprintf(wrong, sizeof wrong, "%s-wrong", pass);
        pass = wrong;
    }
    int clean = c->role != R_CHURN || !R.cfg.churn_session || c->again;
    if (c->role == R_SLOW) { /* the CONNECT goes out a byte per trickle_ms (slow_step) */
        if (!c->tmpl && !(c->tmpl = malloc(1024)))
            die_oom();
        c->tmpl_len = mqtt_connect(c->tmpl, R.cfg.proto, id, (uint16_t)R.cfg.keepalive, 1, R.cfg.username, pass);
        c->pay_off = 0;
        c->next_due = now;
        mark_ready(c);
        arm(c, 0);
        return;
    }
    c->state = S_CONNACK;
    /* room for a long password too (a JWT) */
    size_t room = 640 + (R.cfg.username ? strlen(R.cfg.username) : 0) + (pass ? strlen(pass) : 0);
    c->out.len += mqtt_connect(reserve(&c->out, room), R.cfg.proto, id, (uint16_t)R.cfg.keepalive, clean,
                               R.cfg.username, pass);
    flush(c);
}

/* Churn: every --churn-bad-every-th client id sends a wrong password. */
static int bad_password(const struct conn *c)
{
    return c->role == R_CHURN && R.cfg.churn_bad_every && c->idx % R.cfg.churn_bad_every == 0;
}

/* Churn: say goodbye and wait for the broker to close (the TIME_WAIT is its own). */
static void churn_disconnect(struct conn *c)
{
    c->state = S_BYE;
    c->out.len += mqtt_simple(reserve(&c->out, 2), MQTT_DISCONNECT);
}

static void mark_ready(struct conn *c)
{
    c->state = S_READY;
    R.connecting--;
    if (++R.ready == R.nconns && !R.t_ready)
        R.t_ready = now;
}

/* Skips MQTT 5 CONNACK properties, keeping Receive Maximum (0x21). */
static void connack_props(struct conn *c, const uint8_t *p, const uint8_t *end)
{
    uint32_t plen;
    if (mqtt_read_varint(&p, end, &plen) < 0 || plen > (size_t)(end - p))
        return;
    end = p + plen;
    while (p < end) {
        uint8_t id = *p++;
        switch (id) {
        case 0x21:
            if (end - p >= 2 && (uint32_t)(p[0] << 8 | p[1]) < c->inflight_max)
                c->inflight_max = (uint32_t)(p[0] << 8 | p[1]);
            p += 2;
            break;
        case 0x13: case 0x22: p += 2; break;
        case 0x11: case 0x27: p += 4; break;
        case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a: p += 1; break;
        case 0x26: p += 2 + (end - p >= 2 ? (p[0] << 8 | p[1]) : 0); /* fall through */
        case 0x12: case 0x1a: case 0x1c: case 0x1f: case 0x15: case 0x16:
            p += 2 + (end - p >= 2 ? (p[0] << 8 | p[1]) : 0);
            break;
        default:
            return;
        }
    }
}

static void on_connack(struct conn *c, const uint8_t *b, uint32_t rl)
{
    if (c->role == R_SLOW) { /* the whole CONNECT got in before the broker's timeout */
        R.n.completed++;
        close_conn(c, NULL);
        return;
    }
    if (bad_password(c) == (rl >= 2 && b[1] == 0)) { /* a wrong password let in, or a right one refused */
        R.n.errors++;
        close_conn(c, bad_password(c) ? "CONNACK accepted a wrong password" : "CONNACK refused");
        return;
    }
    if (bad_password(c)) { /* refused, as it must be: the broker closes, then the slot goes on */
        R.n.refused++;
        c->state = S_BYE;
        return;
    }
    if (c->role == R_CHURN)
        R.connected++;
    if (c->role == R_CHURN && (!R.cfg.churn_session || c->again)) {
        churn_disconnect(c);
        return;
    }
    c->inflight_max = (uint32_t)R.cfg.inflight;
    if (R.cfg.proto == 5)
        connack_props(c, b + 2, b + rl);
    if (c->role != R_SUB && c->role != R_CHURN) {
        mark_ready(c);
        return;
    }
    c->state = S_SUBACK;
    c->out.len += mqtt_subscribe(reserve(&c->out, strlen(c->filter) + 16), R.cfg.proto, 1,
                                 c->filter, R.cfg.sub_qos);
}

static void on_suback(struct conn *c, const uint8_t *b, uint32_t rl)
{
    const uint8_t *p = b + 2, *end = b + rl;
    uint32_t plen = 0;
    if (R.cfg.proto == 5 && (mqtt_read_varint(&p, end, &plen) < 0 || plen > (size_t)(end - p)))
        p = end;
    p += plen;
    if (p >= end || *p >= 0x80) {
        R.n.errors++;
        close_conn(c, "SUBACK refused");
        return;
    }
    if (c->role == R_CHURN)
        churn_disconnect(c);
    else
        mark_ready(c);
}

/* ---- receiving ----------------------------------------------------------- */

static struct track *find_track(struct conn *s, uint32_t pub)
{
    size_t lo = 0, hi = s->ntracks;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->tracks[mid].pub < pub)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->ntracks && s->tracks[lo].pub == pub ? &s->tracks[lo] : NULL;
}

static void on_publish(struct conn *c, uint8_t flags, const uint8_t *b, uint32_t rl)
{
    const uint8_t *p = b, *end = b + rl;
    int qos = (flags >> 1) & 3;
    if (rl < 2)
        goto bad;
    p += 2 + (p[0] << 8 | p[1]);
    uint16_t pid = 0;
    if (qos) {
        if (end - p < 2)
            goto bad;
        pid = (uint16_t)(p[0] << 8 | p[1]);
        p += 2;
    }
    uint32_t plen = 0;
    if (R.cfg.proto == 5 && (mqtt_read_varint(&p, end, &plen) < 0 || plen > (size_t)(end - p)))
        goto bad;
    p += plen;
    if (qos == 1)
        queue_ack(c, MQTT_PUBACK, pid);
    else if (qos == 2)
        queue_ack(c, MQTT_PUBREC, pid);
    struct stamp st;
    if ((size_t)(end - p) < sizeof st)
        goto bad;
    memcpy(&st, p, sizeof st);
    if (st.magic != STAMP_MAGIC || st.pub >= (uint32_t)R.cfg.pubs)
        goto bad;
    struct track *t = find_track(c, st.pub);
    if (!t) {
        R.n.unexpected++;
        return;
    }
    R.n.received++;
    R.t_last_rx = now;
    uint64_t adv = track_seq(t, st.seq);
    R.progress[st.pub] += adv;
    R.seen[st.pub] += adv;
    hist_add(&R.lat, now > st.ts_ns ? now - st.ts_ns : 0);
    return;
bad:
    R.n.bad_payload++;
}

static void on_ack(struct conn *c, int type, const uint8_t *b, uint32_t rl)
{
    if (rl < 2)
        return;
    uint16_t pid = (uint16_t)(b[0] << 8 | b[1]);
    int failed = rl >= 3 && b[2] >= 0x80;
    if (failed)
        R.n.errors++;
    switch (type) {
    case MQTT_PUBREC:
        if (!failed) {
            queue_ack(c, MQTT_PUBREL, pid);
            return;
        }
        break;
    case MQTT_PUBREL:
        queue_ack(c, MQTT_PUBCOMP, pid);
        return;
    }
    if (c->inflight)
        c->inflight--;
    R.n.acked += !failed;
}

static void on_frame(struct conn *c, uint8_t h, const uint8_t *body, uint32_t rl)
{
    switch (h >> 4) {
    case MQTT_PUBLISH: on_publish(c, h & 0x0f, body, rl); break;
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
        on_ack(c, h >> 4, body, rl);
        break;
    case MQTT_CONNACK: on_connack(c, body, rl); break;
    case MQTT_SUBACK: on_suback(c, body, rl); break;
    case MQTT_PINGRESP: R.n.pongs++; break;
    case MQTT_DISCONNECT:
        R.n.errors++;
        close_conn(c, "DISCONNECT from broker");
        break;
    default:
        R.n.errors++;
    }
}

static void on_readable(struct conn *c)
{
    size_t have = c->in.len;
    memcpy(rx, c->in.p, have); /* a partial frame left by the last read */
    ssize_t n = recv(c->fd, rx + have, RX_CHUNK, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (c->role == R_SLOW) { /* the broker's connect timeout (or a reset): the slot opens again */
            R.n.closed_by_broker++;
            close_conn(c, NULL);
        } else if (!n && c->state == S_BYE && R.cfg.churn_session && !c->again) {
            close(c->fd); /* the session is kept: its clean connect, same id, is next */
            c->fd = -1;
            c->state = S_CLOSED;
            c->again = 1;
        } else if (!n && c->state == S_BYE) { /* the end of a churn cycle */
            close_conn(c, NULL);
        } else {
            close_conn(c, n ? strerror(errno) : "closed by broker");
        }
        return;
    }
    size_t len = have + (size_t)n, off = 0, hdr;
    uint32_t rl;
    int r;
    while (c->state != S_CLOSED && (r = mqtt_frame(rx + off, len - off, &hdr, &rl)) == 1) {
        on_frame(c, rx[off], rx + off + hdr, rl);
        off += hdr + rl;
    }
    if (c->state == S_CLOSED)
        return;
    if (r < 0) {
        close_conn(c, "malformed frame");
        return;
    }
    c->in.len = 0; /* keep the tail; a frame bigger than the scratch grows it */
    if (len - off > RX_CHUNK)
        die_oom();
    memcpy(reserve(&c->in, len - off), rx + off, len - off);
    c->in.len = len - off;
    if (c->out.len)
        flush(c);
}

/* ---- publishing ---------------------------------------------------------- */

static void emit(struct conn *c, uint64_t ts)
{
    uint8_t *dst = reserve(&c->out, c->tmpl_len);
    memcpy(dst, c->tmpl, c->tmpl_len);
    if (R.cfg.qos) {
        c->pid = c->pid == 65535 ? 1 : c->pid + 1;
        dst[c->pid_off] = (uint8_t)(c->pid >> 8);
        dst[c->pid_off + 1] = (uint8_t)c->pid;
        c->inflight++;
    }
    struct stamp st = {STAMP_MAGIC, (uint32_t)c->idx, c->seq++, ts};
    memcpy(dst + c->pay_off, &st, sizeof st);
    c->out.len += c->tmpl_len;
    R.n.sent++;
}

/* Max-rate mode keeps at most `window` unreceived messages per matching
 * subscriber, so the broker's queues stay bounded. QoS 0 messages a broker
 * dropped would block it forever: after stall_ms the publisher writes them
 * off. QoS 1/2 never does: there a missing message is a failure. */
static int window_open(struct conn *c)
{
    uint64_t fan = R.fanout[c->idx], out = c->seq * fan - R.progress[c->idx];
    if (out < (uint64_t)R.cfg.window * fan) {
        c->blocked_since = 0;
        return 1;
    }
    if (!c->blocked_since)
        c->blocked_since = now;
    else if (!R.cfg.qos && !R.cfg.sub_qos && now - c->blocked_since > (uint64_t)R.cfg.stall_ms * 1000000u) {
        R.progress[c->idx] = c->seq * fan;
        R.n.stalls++;
        c->blocked_since = 0;
    }
    return 0;
}

/* Returns 1 if the publisher has more to send right now. */
static int publish_step(struct conn *c, uint64_t *wake)
{
    if (c->state != S_READY || c->out_armed || now >= R.t_stop)
        return 0;
    uint64_t interval = R.cfg.rate > 0 ? (uint64_t)(1e9 * R.cfg.pubs / R.cfg.rate) : 0;
    int more = 0;
    for (;;) {
        if (c->out.len - c->out.off >= TX_BATCH) {
            more = 1;
            break;
        }
        if (R.cfg.qos && c->inflight >= c->inflight_max)
            break;
        if (interval) {
            if (c->next_due > now || c->next_due >= R.t_stop) {
                if (c->next_due < *wake)
                    *wake = c->next_due;
                break;
            }
            hist_add(&R.lag, now - c->next_due);
            emit(c, c->next_due); /* the intended time: no coordinated omission */
            c->next_due += interval;
        } else {
            if (!window_open(c))
                break;
            emit(c, now);
        }
    }
    if (c->out.len)
        flush(c);
    return more && !c->out_armed;
}

/* ---- the loop ------------------------------------------------------------ */

static void send_pings(void)
{
    uint64_t idle = (uint64_t)R.cfg.keepalive * 500000000u; /* half the keepalive */
    for (int i = 0; i < R.nconns; i++) {
        struct conn *c = &R.conns[i];
        if (c->state == S_READY && c->role != R_SLOW && now - c->last_tx > idle && !c->out.len) {
            c->out.len += mqtt_simple(reserve(&c->out, 2), 12);
            R.n.pings++;
            flush(c);
        }
    }
}

static void open_connections(void)
{
    while (R.started < R.nconns && R.connecting < R.cfg.connect_burst) {
        struct conn *c = &R.conns[R.started];
        if (start_connect(c, R.started) < 0) {
            c->state = S_CLOSED;
            R.n.disconnects++;
            if (R.n.disconnects <= 5)
                fprintf(stderr, "loadgen: connect %d: %s\n", R.started, strerror(errno));
        } else {
            R.connecting++;
        }
        R.started++;
    }
}

/* Churn: each free slot begins the next client id (or the second connect of its
 * session); 1 once every id has ended. */
static int churn_step(void)
{
    for (int i = 0; i < R.nconns; i++) {
        struct conn *c = &R.conns[i];
        if (c->state != S_NEW && c->state != S_CLOSED)
            continue;
        if (!c->again) {
            if (R.churn_started == R.cfg.churn)
                continue;
            c->idx = R.churn_started++;
            if (R.cfg.churn_session) {
                free(c->filter);
                c->filter = expand_index(R.cfg.sub_topic, c->idx);
            }
        }
        c->in.len = c->out.off = c->out.len = 0;
        if (start_connect(c, i) < 0) {
            c->state = S_CLOSED;
            R.churn_done++;
            if (++R.n.disconnects <= 5)
                fprintf(stderr, "loadgen: connect %d: %s\n", c->idx, strerror(errno));
        }
    }
    return R.churn_done == R.cfg.churn;
}

/* Slow: open every closed slot (at most connect_burst in progress) and send each open one its next
 * CONNECT byte when due. */
static void slow_step(void)
{
    uint64_t trickle = (uint64_t)(R.cfg.trickle_ms * 1e6);
    for (int i = 0; i < R.nconns; i++) {
        struct conn *c = &R.conns[i];
        if (c->state == S_NEW || c->state == S_CLOSED) {
            if (R.connecting >= R.cfg.connect_burst)
                continue;
            c->idx = i;
            c->in.len = c->out.off = c->out.len = 0;
            if (start_connect(c, i) < 0) {
                c->state = S_CLOSED;
                if (++R.n.errors <= 5)
                    fprintf(stderr, "loadgen: connect %d: %s\n", i, strerror(errno));
                continue;
            }
            R.connecting++;
            R.n.opened++;
        } else if (c->state == S_READY && now >= c->next_due && c->pay_off < c->tmpl_len) {
            ssize_t n = send(c->fd, c->tmpl + c->pay_off, 1, MSG_NOSIGNAL);
            if (n == 1) {
                c->pay_off++;
                R.n.sent++;
                c->next_due = now + trickle;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                R.n.closed_by_broker++; /* reset after the broker closed it */
                close_conn(c, NULL);
            }
        }
    }
    if (R.t_ready) {
        if (R.ready < R.open_min)
            R.open_min = R.ready;
        R.open_sum += (double)R.ready * (double)(now - (R.t_sampled ? R.t_sampled : now)) / 1e9;
        R.t_sampled = now;
    }
}

static int all_delivered(void)
{
    for (int i = 0; i < R.nconns; i++) {
        struct conn *c = &R.conns[i];
        if (c->role == R_PUB && c->state == S_READY &&
            (c->inflight || R.seen[c->idx] < c->seq * R.fanout[c->idx]))
            return 0;
    }
    return 1;
}

static void progress_line(void)
{
    fprintf(stderr, "{\"event\":\"progress\",\"t\":%.1f,\"connected\":%d,\"sent\":%lu,"
                    "\"received\":%lu,\"errors\":%lu,\"disconnects\":%lu}\n",
            (double)(now - R.t_connect0) / 1e9, R.cfg.churn ? R.connected : R.ready, R.n.sent,
            R.n.received, R.n.errors, R.n.disconnects);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void start_run(void)
{
    struct config *cfg = &R.cfg;
    fprintf(stderr, "{\"event\":\"ready\",\"connected\":%d,\"connect_s\":%.3f}\n", R.ready,
            (double)(R.t_ready - R.t_connect0) / 1e9);
    R.t_start = now;
    R.connected = R.ready;
    R.t_stop = now + (uint64_t)(1e9 * (cfg->idle ? cfg->hold : cfg->duration));
    uint64_t interval = cfg->rate > 0 ? (uint64_t)(1e9 * cfg->pubs / cfg->rate) : 0;
    for (int i = cfg->subs; i < R.nconns && !cfg->idle; i++) /* spread publishers over one interval */
        R.conns[i].next_due = now + interval * (uint64_t)R.conns[i].idx / (uint64_t)cfg->pubs;
    R.cpu_run_s = cpu_s();
}

static void dispatch(struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        struct conn *c = &R.conns[evs[i].data.u32];
        if (c->state == S_CLOSED)
            continue;
        if (c->state == S_TCP) {
            on_tcp_connected(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c);
        if (c->state != S_CLOSED && (evs[i].events & EPOLLOUT))
            flush(c);
    }
}

int lg_loop(void)
{
    struct config *cfg = &R.cfg;
    struct epoll_event evs[MAX_EVENTS];
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_sigterm);
    if ((ep = epoll_create1(0)) < 0 || !(rx = malloc(2 * RX_CHUNK)))
        die_oom();
    now = R.t_connect0 = now_ns();
    uint64_t connect_deadline = now + (uint64_t)(cfg->connect_timeout * 1e9), drain_end = 0;
    uint64_t next_tick = now, progress_at = now;
    int rc = 0;
    if (cfg->churn || cfg->slow) { /* the run is the connecting */
        R.t_start = now;
        R.cpu_run_s = cpu_s();
    }
    for (;;) {
        now = now_ns();
        uint64_t wake = now + 100000000u; /* at least every 100 ms */
        int busy = 0;
        if (terminated) {
            R.open_end = R.ready;
            break;
        }
        if (cfg->slow) {
            static int announced;
            slow_step();
            if (R.t_ready && !announced) {
                announced = 1;
                R.open_min = R.nconns;
                fprintf(stderr, "{\"event\":\"ready\",\"connected\":%d,\"connect_s\":%.3f}\n", R.ready,
                        (double)(R.t_ready - R.t_connect0) / 1e9);
            }
            if (!R.t_ready && now > connect_deadline) {
                fprintf(stderr, "loadgen: only %d of %d slow connections open at once\n", R.ready, R.nconns);
                rc = 2;
                break;
            }
            if (R.t_ready && now >= R.t_ready + (uint64_t)(cfg->hold * 1e9)) {
                R.open_end = R.ready;
                break;
            }
        } else if (cfg->churn) {
            if (churn_step())
                break;
            if (now > connect_deadline) {
                fprintf(stderr, "loadgen: only %d of %d client ids done\n", R.churn_done, cfg->churn);
                rc = 2;
                break;
            }
        } else if (!R.t_start) {
            open_connections();
            if (R.ready == R.nconns)
                start_run();
            else if (now > connect_deadline || R.ready + (int)R.n.disconnects >= R.nconns) {
                fprintf(stderr, "loadgen: only %d of %d connections ready\n", R.ready, R.nconns);
                rc = 2;
                break;
            }
        }
        if (R.t_start && !cfg->idle && now < R.t_stop)
            for (int i = cfg->subs; i < R.nconns; i++)
                busy |= publish_step(&R.conns[i], &wake);
        if (R.t_start && !cfg->churn && !cfg->slow && now >= R.t_stop) {
            if (!drain_end)
                drain_end = now + (uint64_t)(cfg->drain * 1e9);
            if (cfg->idle || all_delivered() || now >= drain_end)
                break;
        }
        if (now >= next_tick) {
            send_pings();
            next_tick = now + 1000000000u;
        }
        if (cfg->progress > 0 && now >= progress_at) {
            if (progress_at > R.t_connect0)
                progress_line();
            progress_at = now + (uint64_t)(cfg->progress * 1e9);
        }
        uint64_t wait = busy ? 0 : wake > now ? wake - now : 0;
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u), .tv_nsec = (long)(wait % 1000000000u)};
        int n = epoll_pwait2(ep, evs, MAX_EVENTS, &ts, NULL);
        if (n < 0 && errno != EINTR) {
            perror("epoll_pwait2");
            rc = 2;
            break;
        }
        now = now_ns();
        dispatch(evs, n > 0 ? n : 0);
    }
    R.t_end = now;
    if (cfg->churn)
        R.t_ready = now;
    if (R.t_start)
        R.cpu_run_s = cpu_s() - R.cpu_run_s;
    if (!R.t_stop)
        R.t_stop = now;
    for (int i = 0; i < R.nconns; i++) { /* polite goodbye, best effort */
        struct conn *c = &R.conns[i];
        if (c->state == S_READY) {
            c->out.off = c->out.len = 0;
            c->out.len += mqtt_simple(reserve(&c->out, 2), MQTT_DISCONNECT);
            flush(c);
        }
        close_conn(c, NULL);
    }
    return rc;
}
