/* MQTT 3.1.1 / 5.0 frame encoding for the load generator.
 * Every frame is built once (connect, subscribe, publish templates) and then
 * only patched (packet id, payload stamp) on the hot path. */
#ifndef LG_MQTT_H
#define LG_MQTT_H

#include <stddef.h>
#include <stdint.h>

enum {
    MQTT_CONNACK = 2, MQTT_PUBLISH = 3, MQTT_PUBACK = 4, MQTT_PUBREC = 5,
    MQTT_PUBREL = 6, MQTT_PUBCOMP = 7, MQTT_SUBACK = 9, MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
};

/* The stamp every benchmark payload starts with; the rest is padding. */
#define STAMP_MAGIC 0x4c474231u /* "LGB1" */
struct stamp {
    uint32_t magic;
    uint32_t pub;   /* publisher index */
    uint64_t seq;   /* per-publisher sequence number, from 0 */
    uint64_t ts_ns; /* intended send time, CLOCK_MONOTONIC */
};

size_t mqtt_varint(uint8_t *dst, uint32_t v);
/* 1: a whole frame is at buf (header length and remaining length set),
 * 0: need more bytes, -1: malformed. */
int mqtt_frame(const uint8_t *buf, size_t len, size_t *hdr, uint32_t *rl);
/* Reads a variable byte integer at *p (< end); -1 if malformed/short. */
int mqtt_read_varint(const uint8_t **p, const uint8_t *end, uint32_t *v);

size_t mqtt_connect(uint8_t *dst, int proto, const char *client_id, uint16_t keepalive, int clean,
                    const char *username, const char *password);
size_t mqtt_subscribe(uint8_t *dst, int proto, uint16_t pid, const char *filter, int qos);
/* PUBLISH with a zeroed payload of payload_len bytes; the offsets of the
 * packet id (QoS > 0) and of the payload are returned for patching. */
size_t mqtt_publish(uint8_t *dst, int proto, const char *topic, int qos, size_t payload_len,
                    size_t *pid_off, size_t *payload_off);
/* PUBACK/PUBREC/PUBREL/PUBCOMP: type from the enum above. */
size_t mqtt_ack(uint8_t *dst, int type, uint16_t pid);
size_t mqtt_simple(uint8_t *dst, int type); /* PINGREQ (12), DISCONNECT */

int topic_matches(const char *filter, const char *topic);

#endif
