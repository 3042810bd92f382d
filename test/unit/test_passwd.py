"""vmq_passwd and vmq-passwd against real files, including mosquitto_passwd's."""

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gevent
import pytest

from vmqpy.plugins import passwd_file, vmq_passwd

REPO = Path(__file__).resolve().parents[2]
TOOL = [str(REPO / "bin" / "vmq-passwd")]
needs_mosquitto = pytest.mark.skipif(shutil.which("mosquitto_passwd") is None,
                                     reason="mosquitto_passwd not installed")


def vmq_passwd_tool(*args, stdin="", cwd=None):
    return subprocess.run(TOOL + list(args), input=stdin, capture_output=True, text=True, cwd=cwd)


def plugin(path, interval=0):
    return vmq_passwd.start({"password_file": str(path), "password_reload_interval": interval}, None)


def register(p, user, password):
    return p.auth_on_register(("127.0.0.1", 1), ("", "c"), user, password, True)


def test_sha512_format_is_vernemqs():
    salt = bytes(range(12))
    encoded = passwd_file.hash_password(b"secret", salt)
    _, kind, salt64, hash64 = encoded.split("$")
    assert kind == "6" and salt64 == "AAECAwQFBgcICQoL"
    expected = hashlib.sha512(b"secret" + salt).digest()
    assert passwd_file.parse_hash(encoded).digest == expected
    assert passwd_file.parse_hash(encoded).verify(b"secret")


@needs_mosquitto
@pytest.mark.parametrize("algo", ["sha512-pbkdf2", "sha512"])
def test_mosquitto_passwd_files_are_accepted(tmp_path, algo):
    f = tmp_path / "mosq.passwd"
    subprocess.run(["mosquitto_passwd", "-H", algo, "-c", "-b", str(f), "alice", "s3cret"], check=True)
    subprocess.run(["mosquitto_passwd", "-H", algo, "-b", str(f), "bob", "b:o b"], check=True)
    assert f.read_text().split(":")[1].startswith("$7$" if algo == "sha512-pbkdf2" else "$6$")
    p = plugin(f)
    assert register(p, "alice", b"s3cret") == "ok"
    assert register(p, "bob", b"b:o b") == "ok"
    assert register(p, "alice", b"wrong") == ("error", "invalid_credentials")


def test_vmq_passwd_file_verifies_and_answers(tmp_path):
    f = tmp_path / "vmq.passwd"
    r = vmq_passwd_tool("-c", str(f), "henry", stdin="pw1\npw1\n")
    assert r.returncode == 0, r.stderr
    p = plugin(f)
    assert register(p, "henry", b"pw1") == "ok"
    assert register(p, "henry", b"pw2") == ("error", "invalid_credentials")
    assert register(p, "nobody", b"pw1") == "next"
    assert register(p, None, None) == "next"
    assert register(p, "henry", None) == "next"
    m5 = p.auth_on_register_m5(("::1", 1), ("", "c"), "henry", b"pw1", True, {})
    assert m5 == "ok"


def test_hostile_credentials_never_match(tmp_path):
    f = tmp_path / "vmq.passwd"
    f.write_text(f"a:{passwd_file.hash_password(b'x')}\nb:{passwd_file.hash_password(b'')}\n")
    p = plugin(f)
    big = "a" * 65536
    for user in ["a:", "a:x", ":a", "a\x00", "\x00", big, "a\n"]:
        assert register(p, user, b"x") == "next"
    assert register(p, "a", b"x" * 65536) == ("error", "invalid_credentials")
    assert register(p, "a", b"x\x00") == ("error", "invalid_credentials")
    assert register(p, "a", b"") == ("error", "invalid_credentials")


def test_reload_picks_up_changes_and_keeps_old_table_on_error(tmp_path, caplog):
    f = tmp_path / "vmq.passwd"
    f.write_text(f"a:{passwd_file.hash_password(b'x')}\n")
    p = plugin(f)
    assert not p.reloader.check()  # unchanged
    f.write_text(f"a:{passwd_file.hash_password(b'x')}\nb:{passwd_file.hash_password(b'y')}\n")
    assert p.reloader.check()
    assert register(p, "b", b"y") == "ok"
    with caplog.at_level(logging.ERROR):
        f.write_text("a:$6$notbase64!$x\nb\n")
        assert not p.reloader.check()
    assert "vmq.passwd:1" in caplog.text and "keeping the previous table" in caplog.text
    assert register(p, "b", b"y") == "ok"
    f.unlink()  # a vanished file keeps the table too, as in VerneMQ
    assert not p.reloader.check()
    assert register(p, "a", b"x") == "ok"


def test_reload_greenlet(tmp_path):
    f = tmp_path / "vmq.passwd"
    p = plugin(f, interval=0.02)  # missing at start: no entries yet
    try:
        assert register(p, "late", b"pw") == "next"
        f.write_text(f"late:{passwd_file.hash_password(b'pw')}\n")
        with gevent.Timeout(2):
            while register(p, "late", b"pw") != "ok":
                gevent.sleep(0.01)
    finally:
        p.stop()


def test_bad_file_at_start_refuses_to_start(tmp_path):
    f = tmp_path / "vmq.passwd"
    f.write_text("user-without-hash\n")
    with pytest.raises(passwd_file.PasswdFileError, match=":1:"):
        plugin(f)


def test_comments_and_blank_lines_are_skipped(tmp_path):
    f = tmp_path / "vmq.passwd"
    f.write_text(f"# users\n\nz:{passwd_file.hash_password(b'1')}\r\n")
    assert register(plugin(f), "z", b"1") == "ok"


def test_tool_create_refuses_existing_file_unless_forced(tmp_path):
    f = tmp_path / "vmq.passwd"
    f.write_text("keep\n")
    r = vmq_passwd_tool("-c", str(f), "u", stdin="p\np\n")
    assert r.returncode == 1 and "already exists" in r.stderr and f.read_text() == "keep\n"
    assert vmq_passwd_tool("-cf", str(f), "u", stdin="p\np\n").returncode == 0
    assert register(plugin(f), "u", b"p") == "ok" and "keep" not in f.read_text()


def test_tool_add_update_delete(tmp_path):
    f = tmp_path / "vmq.passwd"
    assert vmq_passwd_tool("-c", str(f), "a", stdin="1\n1\n").returncode == 0
    assert vmq_passwd_tool(str(f), "b", stdin="2\n2\n").returncode == 0
    assert vmq_passwd_tool(str(f), "a", stdin="3\n3\n").returncode == 0
    assert [line.split(":")[0] for line in f.read_text().splitlines()] == ["a", "b"]
    p = plugin(f)
    assert register(p, "a", b"3") == "ok" and register(p, "b", b"2") == "ok"
    r = vmq_passwd_tool("-D", str(f), "a")
    assert r.returncode == 0
    assert register(plugin(f), "a", b"3") == "next"
    r = vmq_passwd_tool("-D", str(f), "ghost")
    assert r.returncode == 0 and "User ghost not found" in r.stderr


@pytest.mark.parametrize("args, stdin, message", [
    (["-c", "F", "a:b"], "p\np\n", "must not"),
    (["-c", "F", "u"], "p\nq\n", "Passwords do not match."),
    (["-c", "F", "u"], "\n\n", "Empty password."),
    (["-c", "F", "u"], "", "Empty password."),
    (["MISSING", "u"], "p\np\n", "Unable to open password file"),
    (["-x", "F", "u"], "", "Usage: vmq-passwd [-c | -D] passwordfile username"),
    ([], "", "vmq-passwd -U passwordfile"),
])
def test_tool_errors(tmp_path, args, stdin, message):
    args = [str(tmp_path / a) if a in ("F", "MISSING") else a for a in args]
    r = vmq_passwd_tool(*args, stdin=stdin)
    assert r.returncode == 1 and message in r.stderr
    assert not (tmp_path / "F").exists()


def test_tool_converts_plain_file(tmp_path):
    f = tmp_path / "plain"
    hashed = f"old:{passwd_file.hash_password(b'o')}"
    f.write_text(f"a:one\nb:two:with:colons\n{hashed}\n# comment\n")
    os.chmod(f, 0o640)
    assert vmq_passwd_tool("-U", str(f)).returncode == 0
    text = f.read_text()
    assert "one" not in text and hashed in text and "# comment" in text
    assert os.stat(f).st_mode & 0o777 == 0o640
    p = plugin(f)
    assert register(p, "a", b"one") == "ok"
    assert register(p, "b", b"two:with:colons") == "ok"
    assert register(p, "old", b"o") == "ok"


def test_console_script_entry_point(tmp_path):
    f = tmp_path / "vmq.passwd"
    r = subprocess.run([sys.executable, "-m", "vmqpy.scripts.vmq_passwd", "-c", str(f), "u"],
                       input="p\np\n", capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and register(plugin(f), "u", b"p") == "ok"
