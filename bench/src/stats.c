#include "stats.h"

#include <stdlib.h>
#include <string.h>

static int bucket(uint64_t v)
{
    if (v < 256)
        return (int)v;
    int shift = 63 - __builtin_clzll(v) - 7;
    return 256 + (shift - 1) * 128 + (int)((v >> shift) - 128);
}

static uint64_t bucket_value(int i)
{
    if (i < 256)
        return (uint64_t)i;
    int shift = (i - 256) / 128 + 1;
    return (uint64_t)((i - 256) % 128 + 128) << shift;
}

void hist_add(struct hist *h, uint64_t v)
{
    h->b[bucket(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_pct(const struct hist *h, double pct)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)(pct / 100.0 * (double)h->n + 0.5), seen = 0;
    if (want < 1)
        want = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want)
            return bucket_value(i) < h->max ? bucket_value(i) : h->max;
    }
    return h->max;
}

uint64_t track_seq(struct track *t, uint64_t seq)
{
    size_t w = seq / 64;
    if (w >= t->words) {
        size_t words = t->words ? t->words : 1024;
        while (words <= w)
            words *= 2;
        t->bits = realloc(t->bits, words * 8);
        if (!t->bits)
            abort();
        memset(t->bits + t->words, 0, (words - t->words) * 8);
        t->words = words;
    }
    uint64_t bit = 1ull << (seq % 64);
    if (t->bits[w] & bit) {
        t->dups++;
        return 0;
    }
    t->bits[w] |= bit;
    t->unique++;
    if (seq < t->next) {
        t->ooo++;
        return 0;
    }
    uint64_t adv = seq + 1 - t->next;
    t->next = seq + 1;
    return adv;
}
