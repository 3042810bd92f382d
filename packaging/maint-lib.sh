# shellcheck shell=sh
# Shared by the deb's maintainer scripts and the rpm's scriptlets: the build
# inlines this file where a script says #@MAINT_LIB@ (a scriptlet cannot
# source a file of a package that is not, or no longer, unpacked).

# The node runs as this system user; created once, kept across upgrades.
# useradd/groupadd exist on Debian (passwd) and RPM systems (shadow-utils).
vmq_add_user() {
    getent group vernemq >/dev/null || groupadd --system vernemq
    getent passwd vernemq >/dev/null || useradd --system --gid vernemq \
        --home-dir /var/lib/vernemq --no-create-home --shell /usr/sbin/nologin \
        --comment "VerneMQ MQTT broker" vernemq
}

# The node writes its data and logs. vmq-passwd runs as the node's user and
# may replace the password file, so /etc/vernemq is writable by its group.
# The password file is created here, not shipped: it is state, not a default.
vmq_own_files() {
    chown vernemq:vernemq /var/lib/vernemq /var/log/vernemq
    chmod 0750 /var/lib/vernemq /var/log/vernemq
    chown root:vernemq /etc/vernemq
    chmod 0775 /etc/vernemq
    if [ ! -e /etc/vernemq/vmq.passwd ]; then
        install -m 0640 -o vernemq -g vernemq /dev/null /etc/vernemq/vmq.passwd
    fi
}

# Stop a node that runs outside systemd (a container, a chroot) before its
# files go away.
vmq_stop_unmanaged() {
    if [ ! -d /run/systemd/system ] && /usr/sbin/vernemq ping >/dev/null 2>&1; then
        /usr/sbin/vernemq stop || true
    fi
}

# Everything the node and these scripts created, for a purge.
vmq_purge() {
    rm -rf /var/lib/vernemq /var/log/vernemq
    rm -f /etc/vernemq/vmq.passwd
    rmdir /etc/vernemq 2>/dev/null || true
    if getent passwd vernemq >/dev/null; then userdel vernemq; fi
    if getent group vernemq >/dev/null; then groupdel vernemq; fi
}
