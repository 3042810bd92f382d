#!/usr/bin/env python3
"""Rebuild test/vernemq_keys/keys.json (VerneMQ's config keys, from its cuttlefish schema files) and
metrics.json (the broker core's metrics, from vmq_metrics.erl).

    test/vernemq_keys/regenerate.py VERNEMQ_GIT_DIR CUTTLEFISH_GIT_DIR RIAK_SYSMON_GIT_DIR ELEVELDB_GIT_DIR

Each argument is a git directory (a clone or `--bare` mirror of github.com/vernemq/vernemq,
Kyorai/cuttlefish, basho/riak_sysmon, basho/eleveldb) read at HEAD; a VerneMQ release ships all
four's schemas (rebar.config's overlay), in that priority order, with relx's vars.config filled in.
The table holds one row per mapping: key, app, datatype, default, commented, hidden, include_default
and `conf`, the line cuttlefish writes for it into the generated vernemq.conf (null: none).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

# (repository argument index, path in it, app): the release's schemas in cuttlefish's priority order
SCHEMAS = (
    (0, "apps/vmq_server/priv/vmq_server.schema", "vmq_server"),
    (0, "apps/vmq_generic_msg_store/priv/vmq_generic_msg_store.schema", "vmq_generic_msg_store"),
    (0, "apps/vmq_plugin/priv/vmq_plugin.schema", "vmq_plugin"),
    (0, "apps/vmq_acl/priv/vmq_acl.schema", "vmq_acl"),
    (0, "apps/vmq_passwd/priv/vmq_passwd.schema", "vmq_passwd"),
    (0, "apps/vmq_diversity/priv/vmq_diversity.schema", "vmq_diversity"),
    (0, "apps/vmq_diversity/priv/vmq_bcrypt.schema", "vmq_bcrypt"),
    (0, "apps/vmq_webhooks/priv/vmq_webhooks.schema", "vmq_webhooks"),
    (0, "apps/vmq_bridge/priv/vmq_bridge.schema", "vmq_bridge"),
    (0, "apps/vmq_swc/priv/vmq_swc.schema", "vmq_swc"),
    (0, "apps/vmq_http_pub/priv/vmq_http_pub.schema", "vmq_http_pub"),
    (0, "apps/vmq_web_ui/priv/vmq_web_ui.schema", "vmq_web_ui"),
    (0, "files/vmq.schema", "vmq"),
    (1, "priv/erlang_vm.schema", "erlang_vm"),
    (2, "priv/riak_sysmon.schema", "riak_sysmon"),
    (3, "priv/eleveldb.schema", "eleveldb"),
)

_TOKEN = re.compile(r"""
    (?P<ws>\s+|%[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<qatom>'(?:[^'\\]|\\.)*')
  | (?P<char>\$\\?.)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\d+\#[0-9a-zA-Z]+)
  | (?P<dot>\.(?=\s|%|$))
  | (?P<name>[a-zA-Z_][\w@]*)
  | (?P<punct>->|=>|:=|<<|>>|==|=/=|=:=|/=|=<|>=|<-|\+\+|--|\|\||::|[{}\[\](),;:|#=+\-*/<>!?.^&~])
""", re.VERBOSE | re.DOTALL)


def tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise SyntaxError(f"cannot read {text[pos:pos + 40]!r}")
        pos = match.end()
        if match.lastgroup != "ws":
            out.append((match.lastgroup, match.group()))
    return out


def forms(toks: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    out, current = [], []
    for tok in toks:
        if tok[0] == "dot":
            out.append(current)
            current = []
        else:
            current.append(tok)
    return out


_CLOSE = {"{": "}", "[": "]", "(": ")"}  # a call's arguments read as a list


class Atom(str):
    """An Erlang atom (a str, so it prints as its text)."""


def term(toks: list[tuple[str, str]], i: int = 0):
    """The Erlang term at toks[i] (tuples, lists, atoms, strings, numbers) and the index after it."""
    kind, text = toks[i]
    if text in _CLOSE:
        close, items, i = _CLOSE[text], [], i + 1
        while toks[i][1] != close:
            item, i = term(toks, i)
            items.append(item)
            if toks[i][1] == ",":
                i += 1
        return (tuple(items) if close == "}" else items), i + 1
    if kind == "string":
        value = bytes(text[1:-1], "utf-8").decode("unicode_escape")
        while i + 1 < len(toks) and toks[i + 1][0] == "string":  # "a" "b" is one string
            i += 1
            value += bytes(toks[i][1][1:-1], "utf-8").decode("unicode_escape")
        return value, i + 1
    if kind == "qatom":
        return Atom(text[1:-1]), i + 1
    if kind == "number":
        value = float(text) if "." in text else int(text.split("#")[-1])
        while toks[i + 1][1] == "*":  # 256*1024*1024
            factor, i = term(toks, i + 2)
            value, i = value * factor, i - 1
        return value, i + 1
    if kind == "name" and toks[i + 1][1] == ":":  # cuttlefish:otp(Older, Current, ...): OTP >= R16
        args, i = term(toks, i + 3)
        return args[1], i
    if kind == "name":
        return Atom(text), i + 1
    raise SyntaxError(f"unexpected {text!r}")


def erl_vars(git_dir: str) -> dict[str, str]:
    """relx's overlay variables (vars.config) as the text they put into a template."""
    values = {}
    for form in forms(tokens(git_show(git_dir, "vars.config"))):
        (name, value), _ = term(form)
        values[name] = str(value)
    return values


def git_show(git_dir: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def to_conf(value, datatype) -> str:
    """A default as cuttlefish writes it into vernemq.conf (cuttlefish_datatypes:to_string)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"{value[0]}:{value[1]}"  # ip
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):  # a list of strings
        return ", ".join(map(str, value))
    return str(value)


def datatype_text(value) -> str:
    if isinstance(value, tuple):
        return "{" + ", ".join(datatype_text(v) for v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(datatype_text(v) for v in value) + "]"
    return str(value)


def mapping_row(item: tuple, app: str) -> dict:
    _, key, target, *rest = item
    options = rest[0] if rest else []
    props = {opt[0]: opt[1] for opt in options if isinstance(opt, tuple) and len(opt) == 2}
    flags = {opt for opt in options if isinstance(opt, str)}
    datatype = props.get("datatype", Atom("string"))
    first = datatype[0] if isinstance(datatype, list) else datatype
    hidden = "hidden" in flags or props.get("hidden") is True or props.get("level", "basic") != "basic"
    include = props.get("include_default")
    name = key if include is None else re.sub(r"\$[^.]+", include, key, count=1)
    default = props.get("default")
    default = None if default == "undefined" else default  # cuttlefish: no default
    commented = props.get("commented")
    conf = None
    if "$" in name:  # cuttlefish would write the pattern itself, which names no listener: left out
        pass
    elif not hidden and commented is not None:
        conf = f"## {name} = {to_conf(commented, first)}"
    elif not hidden and default is not None:
        conf = f"{name} = {to_conf(default, first)}"
    return {
        "key": key, "app": app, "target": target, "datatype": datatype_text(datatype),
        "default": None if default is None else to_conf(default, first),
        "commented": None if commented is None else to_conf(commented, first),
        "hidden": hidden, "include_default": include, "conf": conf,
    }


def rows(repos: list[str]) -> list[dict]:
    values = erl_vars(repos[0])
    seen: dict[str, dict] = {}
    for index, path, app in SCHEMAS:
        text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m.group(1), m.group()), git_show(repos[index], path))
        for form in forms(tokens(text)):
            if form[:3] == [("punct", "{"), ("name", "mapping"), ("punct", ",")]:
                try:
                    row = mapping_row(term(form)[0], app)
                except SyntaxError:
                    sys.exit(f"{path}: " + " ".join(t for _, t in form))
                seen.setdefault(row["key"], row)  # an earlier schema overrides a later one's mapping
    return list(seen.values())


def metric_rows(git_dir: str) -> list[dict]:
    """Every metric vmq_metrics.erl defines with m(Type, Labels, Id, Name, Description): name, type, labels."""
    toks = tokens(git_show(git_dir, "apps/vmq_server/src/vmq_metrics.erl"))
    found: dict[str, dict] = {}
    for i in range(len(toks) - 2):
        if toks[i] == ("name", "m") and toks[i + 1][1] == "(" and toks[i + 2][1] in ("counter", "gauge",
                                                                                      "histogram"):
            args, depth, current, j = [], 0, [], i + 2
            while depth or toks[j][1] != ")":
                depth += toks[j][1] in "([{"
                depth -= toks[j][1] in ")]}"
                if toks[j][1] == "," and not depth:
                    args.append(current)
                    current = []
                else:
                    current.append(toks[j][1])
                j += 1
            kind, labels, name = args[0][0], args[1], args[3][0]
            if re.fullmatch(r"[a-z_0-9]+", name):  # not the per-scheduler ones named at run time
                row = found.setdefault(name, {"name": name, "type": kind, "labels": []})
                for label in ("mqtt_version", "reason_code", "return_code"):
                    if label in labels and label not in row["labels"]:
                        row["labels"].append(label)
    return list(found.values())


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        sys.exit(__doc__)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keys.json")
    commits = [subprocess.run(["git", "--git-dir", d, "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip() for d in argv]
    table = rows(argv)
    with open(out, "w") as f:
        f.write('{"sources": ' + json.dumps(dict(zip(("vernemq", "cuttlefish", "riak_sysmon", "eleveldb"),
                                                     commits, strict=True))) + ',\n "keys": [\n')
        f.write(",\n".join(json.dumps(row) for row in table))
        f.write("\n]}\n")
    metrics = metric_rows(argv[0])
    with open(os.path.join(os.path.dirname(out), "metrics.json"), "w") as f:
        f.write('{"source": "vernemq ' + commits[0] + ' apps/vmq_server/src/vmq_metrics.erl",\n "metrics": [\n')
        f.write(",\n".join(json.dumps(row) for row in metrics))
        f.write("\n]}\n")
    print(f"{len(metrics)} metrics")
    print(f"{out}: {len(table)} keys, {sum(1 for r in table if r['conf'] and not r['conf'].startswith('#'))} "
          "written at their default")


if __name__ == "__main__":
    main(sys.argv[1:])
