/* Latency histogram and per-publisher sequence tracking. */
#ifndef LG_STATS_H
#define LG_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Log-linear buckets: exact below 256 ns, then 128 per power of two
 * (< 0.8 % error), so recording is one shift and an add. */
#define HIST_BUCKETS (256 + 56 * 128)
struct hist {
    uint64_t n, sum, max;
    uint64_t b[HIST_BUCKETS];
};
void hist_add(struct hist *h, uint64_t v);
uint64_t hist_pct(const struct hist *h, double pct);

/* What one subscriber saw of one publisher. A bitmap of received sequence
 * numbers makes duplicates exact (not guessed from ordering). */
struct track {
    uint32_t pub;
    uint64_t next;   /* highest seq seen + 1 */
    uint64_t unique, dups, ooo;
    uint64_t *bits;
    size_t words;
};
/* Returns how far `next` advanced (0 for a duplicate or late message). */
uint64_t track_seq(struct track *t, uint64_t seq);

#endif
