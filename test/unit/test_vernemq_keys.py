"""Every key of VerneMQ's schemas (test/vernemq_keys/keys.json) is honoured, a documented no-op, or
owned by pending work (test/vernemq_keys/pending.py); none is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vmqpy import config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "vernemq_keys"))
from coverage import classify, table, vmqpy_key  # noqa: E402
from pending import PENDING, PENDING_APPS  # noqa: E402

ROWS = table()
DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "migrating-from-vernemq.md"


@pytest.mark.parametrize("row", ROWS, ids=[row["key"] for row in ROWS])
def test_key_is_honoured_or_a_documented_no_op(row):
    assert classify(row) != "missing", f"{row['app']}: {row['key']} is refused by vmqpy"


def test_pending_lists_only_keys_vmqpy_does_not_know_yet():
    """Once the owning work lands, its keys leave pending.py."""
    known = [key for key in PENDING if vmqpy_key(key)]
    assert known == []
    assert set(PENDING_APPS) <= {row["app"] for row in ROWS}


def test_no_op_keys_are_documented_and_logged_once_as_ignored():
    no_ops = [row["key"] for row in ROWS if classify(row) == "no-op"]
    text = DOCS.read_text()
    assert [key for key in no_ops if f"`{key}`" not in text] == []
    cfg = config.parse_text("erlang.async_threads = 64\nleveldb.maximum_memory.percent = 70\n"
                            "listener.nr_of_acceptors = 10\nmax_inflight_messages = 20\n")
    assert [key for key, _ in cfg.ignored()] == ["erlang.async_threads", "leveldb.maximum_memory.percent",
                                                  "listener.nr_of_acceptors"]


def test_no_op_values_are_still_checked():
    with pytest.raises(config.ConfigError) as err:
        config.parse_text("erlang.max_ports = many\n", "x.conf")
    assert (err.value.line, err.value.key) == (1, "erlang.max_ports") and "integer" in err.value.why
