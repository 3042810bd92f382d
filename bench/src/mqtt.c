#include "mqtt.h"

#include <string.h>

size_t mqtt_varint(uint8_t *dst, uint32_t v)
{
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        dst[n++] = b | (v ? 0x80 : 0);
    } while (v);
    return n;
}

int mqtt_read_varint(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    uint32_t val = 0;
    for (int i = 0; i < 4; i++) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        val |= (uint32_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = val;
            return 0;
        }
    }
    return -1;
}

int mqtt_frame(const uint8_t *buf, size_t len, size_t *hdr, uint32_t *rl)
{
    uint32_t v = 0;
    for (size_t i = 1; i < 5; i++) {
        if (i >= len)
            return 0;
        v |= (uint32_t)(buf[i] & 0x7f) << (7 * (i - 1));
        if (!(buf[i] & 0x80)) {
            *hdr = i + 1;
            *rl = v;
            return len >= *hdr + v ? 1 : 0;
        }
    }
    return -1;
}

static size_t put_str(uint8_t *dst, const char *s)
{
    size_t n = strlen(s);
    dst[0] = (uint8_t)(n >> 8);
    dst[1] = (uint8_t)n;
    memcpy(dst + 2, s, n);
    return n + 2;
}

/* Writes fixed header byte + remaining length in front of a body built at
 * dst + 5, then moves the body down next to the header. */
static size_t finish(uint8_t *dst, uint8_t first, size_t body_len)
{
    uint8_t hdr[5];
    hdr[0] = first;
    size_t h = 1 + mqtt_varint(hdr + 1, (uint32_t)body_len);
    memmove(dst + h, dst + 5, body_len);
    memcpy(dst, hdr, h);
    return h + body_len;
}

size_t mqtt_connect(uint8_t *dst, int proto, const char *client_id, uint16_t keepalive, int clean,
                    const char *username, const char *password)
{
    uint8_t *b = dst + 5;
    size_t n = put_str(b, "MQTT");
    b[n++] = (uint8_t)proto;
    /* clean session / clean start, username and password flags */
    b[n++] = (uint8_t)((clean ? 0x02 : 0x00) | (username ? 0x80 : 0x00) | (password ? 0x40 : 0x00));
    b[n++] = (uint8_t)(keepalive >> 8);
    b[n++] = (uint8_t)keepalive;
    if (proto == 5)
        b[n++] = 0; /* no properties */
    n += put_str(b + n, client_id);
    if (username)
        n += put_str(b + n, username);
    if (password)
        n += put_str(b + n, password);
    return finish(dst, 0x10, n);
}

size_t mqtt_subscribe(uint8_t *dst, int proto, uint16_t pid, const char *filter, int qos)
{
    uint8_t *b = dst + 5;
    size_t n = 0;
    b[n++] = (uint8_t)(pid >> 8);
    b[n++] = (uint8_t)pid;
    if (proto == 5)
        b[n++] = 0;
    n += put_str(b + n, filter);
    b[n++] = (uint8_t)qos;
    return finish(dst, 0x82, n);
}

size_t mqtt_publish(uint8_t *dst, int proto, const char *topic, int qos, size_t payload_len,
                    size_t *pid_off, size_t *payload_off)
{
    size_t tlen = strlen(topic);
    size_t body = 2 + tlen + (qos ? 2 : 0) + (proto == 5 ? 1 : 0) + payload_len;
    size_t n = 0;
    dst[n++] = (uint8_t)(0x30 | (qos << 1));
    n += mqtt_varint(dst + n, (uint32_t)body);
    n += put_str(dst + n, topic);
    *pid_off = n;
    if (qos) {
        dst[n++] = 0;
        dst[n++] = 1;
    }
    if (proto == 5)
        dst[n++] = 0;
    *payload_off = n;
    memset(dst + n, 'x', payload_len);
    return n + payload_len;
}

size_t mqtt_ack(uint8_t *dst, int type, uint16_t pid)
{
    dst[0] = (uint8_t)(type << 4 | (type == MQTT_PUBREL ? 0x02 : 0));
    dst[1] = 2;
    dst[2] = (uint8_t)(pid >> 8);
    dst[3] = (uint8_t)pid;
    return 4;
}

size_t mqtt_simple(uint8_t *dst, int type)
{
    dst[0] = (uint8_t)(type << 4);
    dst[1] = 0;
    return 2;
}

/* MQTT filter matching: '+' one level, '#' the rest (and the parent). */
int topic_matches(const char *f, const char *t)
{
    for (;;) {
        if (*f == '#')
            return 1;
        if (*f == '+') {
            while (*t && *t != '/')
                t++;
            f++;
        } else {
            while (*f && *f != '/' && *f == *t) {
                f++;
                t++;
            }
            if ((*f && *f != '/') || (*t && *t != '/'))
                return 0;
        }
        if (!*f && !*t)
            return 1;
        if (*f == '/' && *t == '/') {
            f++;
            t++;
        } else if (*f == '/' && !*t) {
            return f[1] == '#' && !f[2];
        } else {
            return 0;
        }
    }
}
