"""VerneMQ keys that other work owns: the key walk (test_vernemq_keys.py) does not fail on them yet.

Empty an entry once its work has landed; coverage.py counts these as pending.
"""

ISSUE18 = "issue 18 (vmq_server keys doing real work)"
LIMITS = "issue 18 (subscription limits)"
NOT_YET = "issue 19: not done yet"

# whole apps whose keys another change brings
PENDING_APPS = {
    "vmq_bridge": "bridge work", "vmq_diversity": "diversity work", "vmq_bcrypt": "diversity work",
    "vmq_swc": "cluster work (swc)", "vmq_http_pub": "issue 18 (vmq_http_pub)",
    "vmq_web_ui": "issue 18 (status page)",
}

PENDING = {
    **dict.fromkeys((
        "subscriber_retain_mode", "max_drain_time", "logging.obfuscation_secret", "logging.keepalive_as_warning",
        "override_max_online_messages", "http_modules", "http_module.$name.auth.mode",
        "http_module.vmq_http_mgmt_api.auth.mode", "http_module.vmq_http_pub.auth.mode",
        "http_module.vmq_http_v2_api.auth.mode", "listener.http.$name.http_module.$module.auth.mode",
        "listener.https.$name.http_module.$module.auth.mode", "min_apikey_length", "max_apikey_expiry_days",
        "max_ws_frame_size", "crl_refresh_interval", "systree_mountpoint", "systree_qos", "systree_retain",
        "systree_reg_view", "tcp_listen_options", "shared_subscription_timeout_action", "plugins.$name.priority",
        "disconnect_on_unauthorized_publish_v3", "expire_retain_cache", "vmq_webhooks.cafile",
        "vmq_webhooks.tls_version", "vmq_webhooks.verify_peer", "vmq_webhooks.depth", "vmq_webhooks.certfile",
        "vmq_webhooks.use_crls", "vmq_webhooks.keyfile", "vmq_webhooks.keyfile_password",
    ), ISSUE18),
    **dict.fromkeys(("max_subscriptions_per_client", "topic_max_depth"), LIMITS),
    **dict.fromkeys((
        *(f"listener.{kind}{level}.forward_connection_opts" for kind in ("tcp", "ssl", "ws", "wss")
          for level in ("", ".$name")),
    ), NOT_YET),
}
