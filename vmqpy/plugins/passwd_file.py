"""Password file entries: `user:$6$salt$hash` and `user:$7$iterations$salt$hash`.

`$6$` is what VerneMQ's vmq-passwd (and mosquitto_passwd -H sha512) writes:
base64(sha512(password ++ salt)) with a 12-byte salt. `$7$` is mosquitto 2's
default: base64(PBKDF2-HMAC-SHA512(password, salt, iterations)). Both verify;
new entries are written as `$6$` so the file stays readable by VerneMQ.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

SALT_LEN = 12  # VerneMQ's and mosquitto's


@dataclass(frozen=True, slots=True)
class PasswordHash:
    iterations: int  # 0 for `$6$` (one plain sha512), else PBKDF2 rounds
    salt: bytes
    digest: bytes

    def verify(self, password: bytes) -> bool:
        return hmac.compare_digest(_digest(password, self.salt, self.iterations), self.digest)


class PasswdFileError(ValueError):
    """A password file line that is not `user:$6$...` or `user:$7$...`."""


def _digest(password: bytes, salt: bytes, iterations: int) -> bytes:
    if iterations:
        return hashlib.pbkdf2_hmac("sha512", password, salt, iterations)
    return hashlib.sha512(password + salt).digest()


def hash_password(password: bytes, salt: bytes | None = None) -> str:
    """The `$6$salt$hash` encoding VerneMQ writes."""
    salt = os.urandom(SALT_LEN) if salt is None else salt
    return f"$6${_b64(salt)}${_b64(_digest(password, salt, 0))}"


def parse_hash(encoded: str) -> PasswordHash:
    parts = encoded.split("$")
    try:
        if len(parts) == 4 and parts[:2] == ["", "6"]:
            iterations, salt, digest = 0, parts[2], parts[3]
        elif len(parts) == 5 and parts[:2] == ["", "7"] and parts[2].isdigit() and int(parts[2]) > 0:
            iterations, salt, digest = int(parts[2]), parts[3], parts[4]
        else:
            raise PasswdFileError("not a $6$ or $7$ password hash")
        entry = PasswordHash(iterations, _unb64(salt), _unb64(digest))
    except binascii.Error as e:
        raise PasswdFileError(f"bad base64 in password hash: {e}") from None
    if not entry.salt or len(entry.digest) != hashlib.sha512().digest_size:
        raise PasswdFileError("password hash has an empty salt or a digest that is not sha512")
    return entry


def parse_line(line: str) -> tuple[str, PasswordHash]:
    user, sep, encoded = line.partition(":")
    if not sep or not user:
        raise PasswdFileError("expected user:hash")
    return user, parse_hash(encoded)


def is_entry_line(line: str) -> bool:
    """False for the blank and `#` comment lines that mosquitto skips."""
    return bool(line.strip()) and not line.startswith("#")


def load(path: str) -> dict[str, PasswordHash]:
    """Read a whole password file; any bad line fails the whole file."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    table = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not is_entry_line(line):
            continue
        try:
            user, entry = parse_line(line)
        except PasswdFileError as e:
            raise PasswdFileError(f"{path}:{lineno}: {e}") from None
        table[user] = entry
    return table


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
