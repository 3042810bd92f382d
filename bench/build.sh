#!/bin/sh
# Builds bench/loadgen (the C load generator). No dependencies beyond libc.
set -e
cd "$(dirname "$0")"
# Built beside and renamed, so a loadgen that is running keeps its binary.
${CC:-gcc} -O2 -g -Wall -Wextra -std=gnu11 -o loadgen.new src/main.c src/net.c src/mqtt.c src/stats.c
mv loadgen.new loadgen
