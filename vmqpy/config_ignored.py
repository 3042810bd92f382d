"""VerneMQ keys that tune the Erlang VM or Erlang-only parts: accepted so a VerneMQ config starts, no effect.

Each row is (key, value type, default, why it does nothing here); the type word is one of
config_schema.IGNORED_TYPES. A key of this list set in vernemq.conf is logged once at start as ignored
(config.Config.ignored). docs/migrating-from-vernemq.md lists them.
"""

from __future__ import annotations

_VM = "tunes the Erlang VM"
_SYSMON = "Erlang process and port monitoring (riak_sysmon)"
_LEVELDB = "LevelDB tuning: vmqpy's message store is RocksDB"
_OTP_LOG = "Erlang crash and SASL reports do not exist in vmqpy"
_SOCKET = "Erlang socket and process-mailbox tuning"
_REG = "VerneMQ's pluggable registry views and sharded fanout: vmqpy has one subscription trie"
_CLUSTER = "Erlang cluster-channel tuning: vmqpy's links buffer by outgoing_clustering_buffer_size"
_BCRYPT = "how Erlang runs bcrypt (port or NIF pools): vmqpy hashes in gevent's thread pool"
_IMPL = "picks an Erlang implementation: vmqpy has one (replicated metadata, RocksDB store)"
_HTTP_MOD = "Cowboy dispatch module of an HTTP listener"
_NO_MOUNT = "cluster links carry no MQTT clients, so a mountpoint means nothing there"

IGNORED: tuple[tuple[str, str, str | None, str], ...] = (
    # vmq_server
    ("queue_sup_sup_children", "int", "50", "Erlang queue supervisor count"),
    ("fanout.shard_count", "int", "1", _REG),
    ("fanout.async_handoff", "flag", "off", _REG),
    ("default_reg_view", "text", "vmq_reg_trie", _REG),
    ("reg_views", "text", "[vmq_reg_trie]", _REG),
    ("incoming_clustering_buffer_size", "int", "67108864", _CLUSTER),
    ("outgoing_clustering_flush_threshold", "int", "65536", _CLUSTER),
    ("outgoing_cluster_handshake_ack_timeout", "int", "250", _CLUSTER),
    ("cluster_ready_rpc_timeout", "int", "5000", _CLUSTER),
    ("outgoing_connect_options", "text", "[{keepalive, true}, {send_timeout, 0}]", _SOCKET),
    ("listener.vmq.mountpoint", "text", None, _NO_MOUNT),
    ("listener.vmq.$name.mountpoint", "text", None, _NO_MOUNT),
    ("listener.vmqs.mountpoint", "text", None, _NO_MOUNT),
    ("listener.vmqs.$name.mountpoint", "text", None, _NO_MOUNT),
    ("plumtree.directory", "text", "./data/meta", "vmq_plumtree's store: vmqpy keeps metadata in metadata.dir"),
    ("plumtree.outstanding_limit", "int", "250000", "vmq_plumtree tuning"),
    ("plumtree.drop_i_have_threshold", "int", "1000000", "vmq_plumtree tuning"),
    ("setup.log_dir", "text", "./log/", "Erlang setup application"),
    ("setup.data_dir", "text", "./data/", "Erlang setup application"),
    ("metadata_plugin", "text", "vmq_swc", _IMPL),
    ("message_store_plugin", "text", "vmq_generic_msg_store", _IMPL),
    ("vmq_generic_msg_store.db_backend", "text", "leveldb", _IMPL),
    ("vmq_generic_msg_store.nr_of_buckets", "int", "12", "LevelDB instances of the Erlang message store"),
    # vmq_plugin, vmq_webhooks
    ("wait_for_proc", "text", "vmq_server_sup", "Erlang process the plugin system waits for"),
    ("default_schema_dir", "text", "off", "directory of Erlang plugin schemas"),
    ("vmq_webhooks.clique_lead_line", "text", None, "help text of VerneMQ's CLI"),
    ("vmq_diversity.clique_lead_line", "text", None, "help text of VerneMQ's CLI"),
    # vmq_bcrypt: how Erlang runs bcrypt; vmqpy hashes in gevent's thread pool
    ("vmq_bcrypt.pool_size", "text", "1", _BCRYPT),
    ("vmq_bcrypt.nif_pool_size", "text", "4", _BCRYPT),
    ("vmq_bcrypt.nif_pool_max_overflow", "int", "10", _BCRYPT),
    ("vmq_bcrypt.mechanism", "text", "port", _BCRYPT),
    ("vmq_bridge.clique_lead_line", "text", None, "help text of VerneMQ's CLI"),
    # files/vmq.schema: Erlang logger parts
    ("log.crash", "flag", "off", _OTP_LOG),
    ("log.crash.file", "text", "$(platform_log_dir)/crash.log", _OTP_LOG),
    ("log.crash.rotation.size", "text", "infinity", _OTP_LOG),
    ("log.crash.rotation.keep", "int", "5", _OTP_LOG),
    ("log.crash.rotation.compress_on_rotate", "flag", "off", _OTP_LOG),
    ("log.sasl", "flag", "off", _OTP_LOG),
    ("log.sasl.file", "text", "$(platform_log_dir)/sasl.log", _OTP_LOG),
    ("log.sasl.rotation.size", "text", "infinity", _OTP_LOG),
    ("log.sasl.rotation.keep", "int", "5", _OTP_LOG),
    ("log.sasl.rotation.compress_on_rotate", "flag", "off", _OTP_LOG),
    ("sasl", "flag", "off", _OTP_LOG),
    # cuttlefish's erlang_vm.schema
    ("erlang.smp", "text", "enable", _VM),
    ("erlang.W", "text", "w", _VM),
    ("erlang.schedulers.total", "int", None, _VM),
    ("erlang.schedulers.online", "int", None, _VM),
    ("erlang.K", "flag", "on", _VM),
    ("erlang.async_threads", "int", "64", _VM),
    ("erlang.async_threads.stack_size", "bytes", None, _VM),
    ("erlang.max_ports", "int", "262144", _VM),
    ("erlang.fullsweep_after", "int", "0", _VM),
    ("erlang.crash_dump", "text", "$(platform_log_dir)/erl_crash.dump", _VM),
    ("erlang.max_ets_tables", "int", "256000", _VM),
    ("erlang.process_limit", "int", "256000", _VM),
    ("erlang.distribution_buffer_size", "bytes", None, _VM),
    ("erlang.schedulers.force_wakeup_interval", "int", None, _VM),
    ("erlang.schedulers.compaction_of_load", "text", None, _VM),
    ("erlang.schedulers.utilization_balancing", "text", None, _VM),
    ("erlang.distribution.port_range.minimum", "int", None, _VM),
    ("erlang.distribution.port_range.maximum", "int", None, _VM),
    ("erlang.distribution.interface", "text", None, _VM),
    ("erlang.distribution.net_ticktime", "int", None, _VM),
    # riak_sysmon
    ("runtime_health.thresholds.busy_processes", "int", "30", _SYSMON),
    ("runtime_health.thresholds.busy_ports", "int", "2", _SYSMON),
    ("runtime_health.triggers.process.garbage_collection", "text", "off", _SYSMON),
    ("runtime_health.triggers.process.long_schedule", "text", "off", _SYSMON),
    ("runtime_health.triggers.process.heap_size", "text", "160444000", _SYSMON),
    ("runtime_health.triggers.port", "flag", "on", _SYSMON),
    ("runtime_health.triggers.distribution_port", "flag", "on", _SYSMON),
    # eleveldb
    ("leveldb.data_root", "text", "$(platform_data_dir)/leveldb", _LEVELDB),
    ("leveldb.maximum_memory.percent", "int", "70", _LEVELDB),
    ("leveldb.maximum_memory", "bytes", None, _LEVELDB),
    ("leveldb.sync_on_write", "flag", "off", _LEVELDB + " (message_store.sync is the fsync switch)"),
    ("leveldb.limited_developer_mem", "flag", "off", _LEVELDB),
    ("leveldb.write_buffer_size_min", "bytes", "30MB", _LEVELDB),
    ("leveldb.write_buffer_size_max", "bytes", "60MB", _LEVELDB),
    ("leveldb.bloomfilter", "flag", "on", _LEVELDB),
    ("leveldb.block_cache_threshold", "bytes", "32MB", _LEVELDB),
    ("leveldb.block.size", "bytes", "4KB", _LEVELDB),
    ("leveldb.block.restart_interval", "int", "16", _LEVELDB),
    ("leveldb.block.size_steps", "int", "16", _LEVELDB),
    ("leveldb.verify_checksums", "flag", "on", _LEVELDB),
    ("leveldb.verify_compaction", "flag", "on", _LEVELDB),
    ("leveldb.threads", "int", "71", _LEVELDB),
    ("leveldb.fadvise_willneed", "text", "false", _LEVELDB),
    ("leveldb.compression", "flag", "on", _LEVELDB),
    ("leveldb.compression.algorithm", "text", None, _LEVELDB),
    ("leveldb.compaction.trigger.tombstone_count", "text", "1000", _LEVELDB),
    ("leveldb.tiered", "text", "off", _LEVELDB),
    ("leveldb.tiered.path.fast", "text", None, _LEVELDB),
    ("leveldb.tiered.path.slow", "text", None, _LEVELDB),
    ("leveldb.cache_object_warming", "text", "true", _LEVELDB),
    ("leveldb.expiration", "flag", "off", _LEVELDB),
    ("leveldb.expiration.retention_time", "text", "unlimited", _LEVELDB),
    ("leveldb.expiration.mode", "text", "whole_file", _LEVELDB),
)
