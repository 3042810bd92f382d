#!/bin/sh
# Installed as /usr/sbin/vernemq, vmq-admin and vmq-passwd: runs the release
# command of the same name in /usr/lib/vernemq with the system's config and
# Python. Root runs it as the vernemq user, so the files the node and
# vmq-passwd create belong to the service.
VERNEMQ_CONF=${VERNEMQ_CONF:-/etc/vernemq/vernemq.conf}
VMQ_PYTHON=${VMQ_PYTHON:-/usr/bin/python$(cat /usr/lib/vernemq/lib/python-version)}
export VERNEMQ_CONF VMQ_PYTHON
cmd=/usr/lib/vernemq/bin/$(basename "$0")
if [ "$(id -u)" -eq 0 ]; then
    exec runuser -u vernemq -- "$cmd" "$@"
fi
exec "$cmd" "$@"
