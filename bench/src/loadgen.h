/* Shared state of the load generator: one process, one epoll loop. */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

#define MAX_BINDS 256

struct config {
    const char *host, *sub_host;    /* sub_host/sub_port: subscribers on another node (a cluster) */
    int port, sub_port, proto, qos, sub_qos;
    int idle;                       /* idle mode: hold connections only */
    int churn;                      /* churn mode (idle too): this many connect/disconnect cycles */
    int churn_session;              /* churn: a persistent session subscribing sub_topic first */
    int pubs, subs, conns;          /* conns: idle mode connection count */
    const char *pub_topic, *sub_topic;
    size_t payload;
    double rate;                    /* total offered msg/s; 0 = as fast as possible */
    double duration, drain, hold, connect_timeout, progress;
    int window, inflight, keepalive, connect_burst, stall_ms;
    const char *binds[MAX_BINDS];
    int nbinds;
    const char *id_prefix, *label;
    const char *username, *password; /* CONNECT credentials, NULL: none */
};

struct buf {
    uint8_t *p;
    size_t off, len, cap;           /* pending bytes are p[off..len) */
};

enum role { R_PUB, R_SUB, R_IDLE, R_CHURN };
enum state { S_NEW, S_TCP, S_CONNACK, S_SUBACK, S_READY, S_BYE, S_CLOSED }; /* S_BYE: churn, DISCONNECT sent */

struct conn {
    int fd, idx;
    uint8_t role, state, out_armed;
    uint8_t again;                  /* churn_session: the clean connect that ends the session is next */
    struct buf in, out;
    uint64_t last_tx;
    /* publisher */
    uint64_t seq, next_due, blocked_since;
    uint32_t inflight, inflight_max;
    uint16_t pid;
    uint8_t *tmpl;
    size_t tmpl_len, pid_off, pay_off;
    char *topic;
    /* subscriber: what it expects, sorted by publisher index */
    char *filter;
    struct track *tracks;
    size_t ntracks;
};

struct counters {
    uint64_t sent, received, acked, pings, pongs, stalls;
    uint64_t errors, disconnects, unexpected, bad_payload, lost;
};

struct run {
    struct config cfg;
    struct conn *conns;
    int nconns, started, ready, connected;
    int connecting; /* started, not yet ready nor closed: what connect_burst limits */
    int churn_started, churn_done; /* churn mode: client ids begun, cycles ended (either way) */
    /* per publisher: matching subscribers; receipts plus gaps (what the
     * window counts, including write-offs); the same without write-offs */
    uint64_t *fanout, *progress, *seen;
    struct hist lat;
    struct hist lag; /* rate mode: how late the generator sent, after the intended time */
    struct counters n;
    uint64_t t_connect0, t_ready, t_start, t_stop, t_last_rx, t_end;
    double cpu_run_s;
};

extern struct run R;

uint64_t now_ns(void);
char *expand_index(const char *tmpl, int idx); /* "%d" in tmpl becomes idx */
int lg_setup(void);                 /* build frames, match subscriptions */
int lg_loop(void);                  /* connect, run, drain; 0 on success */
void lg_report(void);               /* the JSON result line on stdout */

#endif
