"""VerneMQ keys that other work owns: the key walk (test_vernemq_keys.py) does not fail on them yet.

Empty an entry once its work has landed; coverage.py counts these as pending.
"""

NOT_YET = "issue 19: not done yet"

# whole apps whose keys another change brings
PENDING_APPS = {
    "vmq_swc": "cluster work (swc)", "vmq_web_ui": "issue 18 (status page)",
}

PENDING = {
    **dict.fromkeys((
        *(f"listener.{kind}{level}.forward_connection_opts" for kind in ("tcp", "ssl", "ws", "wss")
          for level in ("", ".$name")),
    ), NOT_YET),
}
