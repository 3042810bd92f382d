"""vmq-passwd: manage a VerneMQ password file (same usage as VerneMQ's tool).

New and changed entries are written as VerneMQ's `$6$` (salted sha512); the
file is replaced atomically so a broker reloading it never reads half of it.
"""

from __future__ import annotations

import getpass
import os
import sys
import tempfile

from vmqpy.plugins.passwd_file import PasswdFileError, hash_password, is_entry_line, parse_hash

USAGE = """\
vmq-passwd is a tool for managing password files for VerneMQ.

Usage: vmq-passwd [-c | -D] passwordfile username
       vmq-passwd -U passwordfile
 -c[f] : create a new password file. Use -cf to (f)orce overwriting existing files.
 -D    : delete the username rather than adding/updating its password.
 -U    : update a plain text password file to use hashed passwords.
"""


class ToolError(Exception):
    """Reported as `Error: ...` on stderr, exit status 1."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        match args:
            case ["-c" | "-cf" as flag, path, user]:
                create(path, user, overwrite=flag == "-cf")
            case ["-D", path, user]:
                delete(path, user)
            case ["-U", path]:
                convert(path)
            case [path, user] if not path.startswith("-"):
                update(path, user)
            case _:
                sys.stderr.write(USAGE)
                return 1
    except ToolError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


def create(path: str, user: str, overwrite: bool) -> None:
    _check_username(user)
    if os.path.exists(path):
        if not overwrite:
            raise ToolError(f"File {path} already exists. "
                            "Please use -cf in case you want to overwrite the file")
        print("File already exists. PLEASE ABORT OPERATION IF YOU DO NOT INTENT TO OVERWRITE "
              "THE ALREADY EXISTING FILE!")
    _write(path, [_entry(user, read_password())])


def update(path: str, user: str) -> None:
    _check_username(user)
    lines = _read(path)
    entry = _entry(user, read_password())
    new = [entry if _user_of(line) == user else line for line in lines]
    if entry not in new:
        new.append(entry)
    _write(path, new)


def delete(path: str, user: str) -> None:
    lines = _read(path)
    kept = [line for line in lines if _user_of(line) != user]
    if len(kept) == len(lines):
        print(f"Warning: User {user} not found in password file.", file=sys.stderr)
        return
    _write(path, kept)


def convert(path: str) -> None:
    """Hash every plain `user:password` line; already hashed lines are kept as they are."""
    _write(path, [_hash_plain(line) for line in _read(path)])


def read_password() -> bytes:
    """Ask twice; from the terminal without echo, else from stdin lines (for scripts)."""
    first = _prompt("Password: ")
    second = _prompt("Reenter password: ")
    if first != second:
        raise ToolError("Passwords do not match.")
    return first.encode("utf-8")


def _prompt(prompt: str) -> str:
    if sys.stdin.isatty():
        answer = getpass.getpass(prompt)
    else:
        print(prompt)
        answer = sys.stdin.readline().rstrip("\r\n")
    if not answer:
        raise ToolError("Empty password.")
    return answer


def _hash_plain(line: str) -> str:
    user, sep, password = line.partition(":")
    if not is_entry_line(line) or not sep:
        return line
    try:
        parse_hash(password)
        return line
    except PasswdFileError:
        return _entry(user, password.encode("utf-8"))


def _check_username(user: str) -> None:
    if not user or ":" in user or "\n" in user:
        raise ToolError("Username must not be empty or contain the ':' or newline character.")


def _entry(user: str, password: bytes) -> str:
    return f"{user}:{hash_password(password)}"


def _user_of(line: str) -> str:
    return line.partition(":")[0]


def _read(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ToolError(f"Unable to open password file {path}. {e}.") from None


def _write(path: str, lines: list[str]) -> None:
    """Replace `path` atomically, keeping its mode (new files get the umask default)."""
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".vmq-passwd.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise ToolError(f"Unable to write password file {path}. {e}.") from None


if __name__ == "__main__":
    sys.exit(main())
