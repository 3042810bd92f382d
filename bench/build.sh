#!/bin/sh
# Builds bench/loadgen (the C load generator). No dependencies beyond libc.
set -e
cd "$(dirname "$0")"
${CC:-gcc} -O2 -g -Wall -Wextra -std=gnu11 -o loadgen src/main.c src/net.c src/mqtt.c src/stats.c
