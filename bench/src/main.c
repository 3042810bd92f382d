/* loadgen: options, the subscription/publisher plan, and the JSON report. */
#define _GNU_SOURCE
#include <getopt.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "mqtt.h"

struct run R;

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
    fputs("usage: loadgen [options]\n"
          "  --host H --port P          broker (127.0.0.1:1883)\n"
          "  --sub-host H --sub-port P  subscribers connect here instead (another cluster node)\n"
          "  --proto 4|5                MQTT 3.1.1 or 5.0 (4)\n"
          "  --pattern fanin|fanout|pairs  sets pub/sub topics (pairs)\n"
          "  --pubs N --subs N          publishers, subscribers (1, 1)\n"
          "  --pub-topic T --sub-topic F  '%d' is replaced by the client index\n"
          "  --qos Q [--sub-qos Q]      0, 1, 2\n"
          "  --payload BYTES            >= 24 (64)\n"
          "  --rate MSGS                total offered msg/s, open loop; 0 = max (0)\n"
          "  --duration S --drain S     publish time, then wait for stragglers (5, 10)\n"
          "  --window N                 max mode: unreceived msgs per publisher per sub (1000)\n"
          "  --inflight N               QoS 1/2 unacked per publisher (20, as brokers default)\n"
          "  --idle N --hold S          idle mode: hold N connections S seconds\n"
          "  --churn N                  churn mode: N client ids, each connects (clean session),\n"
          "                             disconnects and waits for the broker to close; at most\n"
          "                             --connect-burst at once, all within --connect-timeout\n"
          "  --churn-session            churn: first a persistent session (clean_session=0)\n"
          "                             subscribing --sub-topic (%d: the index) at --sub-qos,\n"
          "                             then a clean connect with the same id ends it\n"
          "  --id-prefix P              client ids P-<role><index> (lg<pid>)\n"
          "  --username U, --password P CONNECT with these credentials (none)\n"
          "  --keepalive S              (60)\n"
          "  --bind A,B,...             source addresses, round robin\n"
          "  --connect-burst N          connects in progress at once (64)\n"
          "  --connect-timeout S        (60)\n"
          "  --progress S               progress line on stderr every S seconds\n"
          "  --label TEXT               copied into the JSON\n",
          stderr);
    exit(2);
}

static void set_pattern(struct config *c, const char *p)
{
    if (!strcmp(p, "fanin")) {
        c->pub_topic = "lg/in/%d";
        c->sub_topic = "lg/in/+";
    } else if (!strcmp(p, "fanout")) {
        c->pub_topic = "lg/out";
        c->sub_topic = "lg/out";
    } else if (!strcmp(p, "pairs")) {
        c->pub_topic = "lg/pair/%d";
        c->sub_topic = "lg/pair/%d";
    } else {
        usage();
    }
}

static void parse_binds(struct config *c, char *list)
{
    for (char *s = strtok(list, ","); s && c->nbinds < MAX_BINDS; s = strtok(NULL, ","))
        c->binds[c->nbinds++] = s;
}

static void parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"sub-host", 1, 0, 1001}, {"sub-port", 1, 0, 1002}, {"proto", 1, 0, 'V'},
        {"pattern", 1, 0, 'P'}, {"pubs", 1, 0, 'n'}, {"subs", 1, 0, 's'},
        {"pub-topic", 1, 0, 't'}, {"sub-topic", 1, 0, 'T'}, {"qos", 1, 0, 'q'},
        {"sub-qos", 1, 0, 'Q'}, {"payload", 1, 0, 'b'}, {"rate", 1, 0, 'r'},
        {"duration", 1, 0, 'd'}, {"drain", 1, 0, 'D'}, {"window", 1, 0, 'w'},
        {"inflight", 1, 0, 'i'}, {"idle", 1, 0, 'I'}, {"hold", 1, 0, 'H'},
        {"keepalive", 1, 0, 'k'}, {"bind", 1, 0, 'B'}, {"connect-burst", 1, 0, 'c'},
        {"connect-timeout", 1, 0, 'C'}, {"progress", 1, 0, 'g'}, {"label", 1, 0, 'L'},
        {"stall-ms", 1, 0, 'S'}, {"churn", 1, 0, 1003}, {"id-prefix", 1, 0, 1004}, {"churn-session", 0, 0, 1005}, {"username", 1, 0, 1006}, {"password", 1, 0, 1007}, {"help", 0, 0, '?'}, {0, 0, 0, 0},
    };
    struct config *c = &R.cfg;
    *c = (struct config){
        .host = "127.0.0.1", .port = 1883, .proto = 4, .qos = 0, .sub_qos = -1,
        .pubs = 1, .subs = 1, .payload = 64, .duration = 5, .drain = 10, .hold = 10,
        .connect_timeout = 60, .window = 1000, .inflight = 20, .keepalive = 60,
        .connect_burst = 64, .stall_ms = 500, .label = "",
    };
    set_pattern(c, "pairs");
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': c->host = optarg; break;
        case 'p': c->port = atoi(optarg); break;
        case 1001: c->sub_host = optarg; break;
        case 1002: c->sub_port = atoi(optarg); break;
        case 'V': c->proto = atoi(optarg); break;
        case 'P': set_pattern(c, optarg); break;
        case 'n': c->pubs = atoi(optarg); break;
        case 's': c->subs = atoi(optarg); break;
        case 't': c->pub_topic = optarg; break;
        case 'T': c->sub_topic = optarg; break;
        case 'q': c->qos = atoi(optarg); break;
        case 'Q': c->sub_qos = atoi(optarg); break;
        case 'b': c->payload = (size_t)atol(optarg); break;
        case 'r': c->rate = atof(optarg); break;
        case 'd': c->duration = atof(optarg); break;
        case 'D': c->drain = atof(optarg); break;
        case 'w': c->window = atoi(optarg); break;
        case 'i': c->inflight = atoi(optarg); break;
        case 'I': c->idle = 1; c->conns = atoi(optarg); break;
        case 'H': c->hold = atof(optarg); break;
        case 'k': c->keepalive = atoi(optarg); break;
        case 'B': parse_binds(c, optarg); break;
        case 'c': c->connect_burst = atoi(optarg); break;
        case 'C': c->connect_timeout = atof(optarg); break;
        case 'g': c->progress = atof(optarg); break;
        case 'L': c->label = optarg; break;
        case 'S': c->stall_ms = atoi(optarg); break;
        case 1003: c->idle = 1; c->churn = atoi(optarg); c->conns = c->churn; break;
        case 1004: c->id_prefix = optarg; break;
        case 1006: c->username = optarg; break;
        case 1007: c->password = optarg; break;
        case 1005: c->churn_session = 1; break;
        default: usage();
        }
    }
    if (c->sub_qos < 0)
        c->sub_qos = c->qos;
    if ((c->proto != 4 && c->proto != 5) || c->qos < 0 || c->qos > 2 || c->sub_qos > 2 ||
        c->payload < sizeof(struct stamp) || c->payload > 1 << 20 || c->connect_burst < 1 ||
        c->inflight < 1 || c->inflight > 65535 || c->window < 1 || c->duration <= 0 ||
        (c->idle && c->conns < 1) || (!c->idle && (c->pubs < 1 || c->subs < 1)))
        usage();
    if (c->churn && c->conns > c->connect_burst) /* churn: conns are slots, reused id after id */
        c->conns = c->connect_burst;
    if (c->idle)
        c->pubs = c->subs = 0;
    else
        c->conns = c->pubs + c->subs;
}

/* "%d" in a topic template becomes the client's index. */
char *expand_index(const char *tmpl, int idx)
{
    const char *at = strstr(tmpl, "%d");
    char *out;
    if (!at)
        return strdup(tmpl);
    if (asprintf(&out, "%.*s%d%s", (int)(at - tmpl), tmpl, idx, at + 2) < 0)
        abort();
    return out;
}

static int cmp_pub_topic(const void *a, const void *b)
{
    const struct conn *x = &R.conns[*(const int *)a], *y = &R.conns[*(const int *)b];
    int r = strcmp(x->topic, y->topic);
    return r ? r : *(const int *)a - *(const int *)b;
}

static void add_track(struct conn *s, int pub)
{
    s->tracks = realloc(s->tracks, (s->ntracks + 1) * sizeof *s->tracks);
    if (!s->tracks)
        abort();
    s->tracks[s->ntracks++] = (struct track){.pub = (uint32_t)pub};
    R.fanout[pub]++;
}

/* Which publishers each subscriber hears: a wildcard filter is tried on every
 * publisher, an exact one is looked up among the sorted publisher topics. */
static void match_subscriptions(const int *by_topic)
{
    int P = R.cfg.pubs;
    for (int i = 0; i < R.cfg.subs; i++) {
        struct conn *s = &R.conns[i];
        if (strpbrk(s->filter, "+#")) {
            for (int p = 0; p < P; p++)
                if (topic_matches(s->filter, R.conns[R.cfg.subs + p].topic))
                    add_track(s, p);
            continue;
        }
        int lo = 0, hi = P; /* first publisher topic >= filter */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (strcmp(R.conns[by_topic[mid]].topic, s->filter) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < P && !strcmp(R.conns[by_topic[lo]].topic, s->filter); lo++)
            add_track(s, by_topic[lo] - R.cfg.subs); /* ascending: ties sort by index */
    }
}

int lg_setup(void)
{
    struct config *c = &R.cfg;
    R.nconns = c->conns;
    R.conns = calloc((size_t)R.nconns, sizeof *R.conns);
    R.fanout = calloc((size_t)c->pubs + 1, sizeof *R.fanout);
    R.progress = calloc((size_t)c->pubs + 1, sizeof *R.progress);
    R.seen = calloc((size_t)c->pubs + 1, sizeof *R.seen);
    int *by_topic = calloc((size_t)c->pubs + 1, sizeof *by_topic);
    if (!R.conns || !R.fanout || !R.progress || !R.seen || !by_topic)
        return -1;
    for (int i = 0; i < R.nconns; i++) { /* subscribers first: they must be ready first */
        struct conn *k = &R.conns[i];
        k->fd = -1;
        k->role = c->churn ? R_CHURN : c->idle ? R_IDLE : i < c->subs ? R_SUB : R_PUB;
        k->idx = k->role == R_PUB ? i - c->subs : i;
        if (k->role == R_SUB)
            k->filter = expand_index(c->sub_topic, k->idx);
        if (k->role != R_PUB)
            continue;
        k->topic = expand_index(c->pub_topic, k->idx);
        k->tmpl = malloc(strlen(k->topic) + c->payload + 16);
        if (!k->tmpl)
            return -1;
        k->tmpl_len = mqtt_publish(k->tmpl, c->proto, k->topic, c->qos, c->payload, &k->pid_off,
                                   &k->pay_off);
        by_topic[k->idx] = i;
    }
    qsort(by_topic, (size_t)c->pubs, sizeof *by_topic, cmp_pub_topic);
    match_subscriptions(by_topic);
    free(by_topic);
    for (int p = 0; p < c->pubs; p++)
        if (!R.fanout[p])
            fprintf(stderr, "loadgen: warning: publisher %d has no subscriber\n", p);
    return 0;
}

static double secs(uint64_t a, uint64_t b) { return b > a ? (double)(b - a) / 1e9 : 0.0; }

static void report_messages(FILE *f)
{
    struct config *c = &R.cfg;
    uint64_t expected = 0, unique = 0, dups = 0, ooo = 0, lost = 0;
    for (int i = 0; i < c->subs; i++) {
        struct conn *s = &R.conns[i];
        for (size_t k = 0; k < s->ntracks; k++) {
            struct track *t = &s->tracks[k];
            uint64_t sent = R.conns[c->subs + (int)t->pub].seq;
            expected += sent;
            unique += t->unique;
            dups += t->dups;
            ooo += t->ooo;
            lost += sent > t->unique ? sent - t->unique : 0;
        }
    }
    R.n.lost = lost;
    double run_s = secs(R.t_start, R.t_stop), rx_s = secs(R.t_start, R.t_last_rx);
    fprintf(f, ",\"pubs\":%d,\"subs\":%d,\"qos\":%d,\"sub_qos\":%d,\"payload\":%zu,"
               "\"rate\":%.0f,\"duration_s\":%.3f,\"sent\":%lu,\"expected\":%lu,"
               "\"received\":%lu,\"unique\":%lu,\"lost\":%lu,\"duplicates\":%lu,"
               "\"out_of_order\":%lu,\"acked\":%lu,\"send_rate\":%.0f,\"recv_rate\":%.0f,"
               "\"stalls\":%lu",
            c->pubs, c->subs, c->qos, c->sub_qos, c->payload, c->rate, run_s, R.n.sent, expected,
            R.n.received, unique, lost, dups, ooo, R.n.acked, run_s ? (double)R.n.sent / run_s : 0,
            rx_s ? (double)R.n.received / rx_s : 0, R.n.stalls);
    const struct hist *h = &R.lat;
    fprintf(f, ",\"latency_us\":{\"n\":%lu,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
               "\"p999\":%.1f,\"max\":%.1f}",
            h->n, h->n ? (double)h->sum / (double)h->n / 1e3 : 0, hist_pct(h, 50) / 1e3,
            hist_pct(h, 90) / 1e3, hist_pct(h, 99) / 1e3, hist_pct(h, 99.9) / 1e3, h->max / 1e3);
    if (c->rate > 0)
        fprintf(f, ",\"send_lag_us\":{\"p50\":%.1f,\"p99\":%.1f}", hist_pct(&R.lag, 50) / 1e3,
                hist_pct(&R.lag, 99) / 1e3);
}

void lg_report(void)
{
    struct config *c = &R.cfg;
    double connect_s = secs(R.t_connect0, R.t_ready);
    printf("{\"tool\":\"loadgen\",\"label\":\"%s\",\"mode\":\"%s\",\"proto\":%d,\"connections\":%d,"
           "\"connected\":%d,\"connect_s\":%.3f,\"connect_rate\":%.0f",
           c->label, c->churn ? "churn" : c->idle ? "idle" : "pubsub", c->proto,
           c->churn ? c->churn : R.nconns, R.connected, connect_s,
           connect_s ? R.connected / connect_s : 0);
    if (!c->idle)
        report_messages(stdout);
    printf(",\"pings\":%lu,\"pongs\":%lu,\"errors\":%lu,\"disconnects\":%lu,\"unexpected\":%lu,"
           "\"bad_payload\":%lu,\"loadgen_cpu_s\":%.3f,\"loadgen_cpu_pct\":%.1f}\n",
           R.n.pings, R.n.pongs, R.n.errors, R.n.disconnects, R.n.unexpected, R.n.bad_payload,
           R.cpu_run_s, 100.0 * R.cpu_run_s / (secs(R.t_start, R.t_end) ?: 1));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    /* Rate mode sleeps until the next intended send time: the default 50 us
     * timer slack would make every send (and so every latency) later. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    char pfx[32];
    snprintf(pfx, sizeof pfx, "lg%d", (int)getpid());
    if (!R.cfg.id_prefix)
        R.cfg.id_prefix = pfx;
    if (lg_setup() < 0) {
        fputs("loadgen: out of memory\n", stderr);
        return 2;
    }
    int rc = lg_loop();
    lg_report();
    int qos = R.cfg.qos < R.cfg.sub_qos ? R.cfg.qos : R.cfg.sub_qos;
    if (!R.cfg.idle && qos > 0 && (R.n.lost || R.n.errors || R.n.disconnects)) {
        fprintf(stderr, "loadgen: *** QoS %d RUN FAILED: %lu lost, %lu errors, %lu disconnects ***\n",
                qos, R.n.lost, R.n.errors, R.n.disconnects);
        rc = rc ? rc : 1;
    }
    if (R.cfg.churn && (R.n.errors || R.n.disconnects)) {
        fprintf(stderr, "loadgen: *** CHURN FAILED: %lu errors, %lu disconnects ***\n", R.n.errors,
                R.n.disconnects);
        rc = rc ? rc : 1;
    }
    return rc;
}
