"""vmq-admin tls show|check|clear-pem-cache, as VerneMQ's vmq_ssl_cli.

`show` and `check` read the certfile of every TLS listener (ssl, wss, vmqs).
`clear-pem-cache` is what VerneMQ's ssl:clear_pem_cache does for an operator
who replaced certificate files: new connections use the files as they are now
(each TLS listener's context is built again; connected clients stay).
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from vmqpy.admin.commands import Args, Result, Table, command
from vmqpy.broker import tls
from vmqpy.config_schema import TLS_OPTION_KINDS

if TYPE_CHECKING:
    from vmqpy.broker.node import Node

log = logging.getLogger(__name__)
SHOW_COLUMNS = ["File", "Not_Before", "Not_After", "CN", "Issuer", "SAN"]
CHECK_COLUMNS = ["File", "Not_Before", "Not_After", "SecExp", "SecToVal"]
DEFAULT_VALIDITY = "172800"  # two days


def cert_files(node: Node) -> list[str]:
    """The certfile of every TLS listener, once each, in config order."""
    files = [spec.opts.get("certfile") for spec in node.config.listeners if spec.kind in TLS_OPTION_KINDS]
    return list(dict.fromkeys(f for f in files if f))


def _cn(name: x509.Name) -> str | None:
    found = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else None


def _date(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


def read_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def describe(path: str) -> dict[str, Any]:
    cert = read_cert(path)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [str(v) for v in sans.get_values_for_type(x509.DNSName)]
        san += [str(v) for v in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        san = []
    return {"File": path, "Not_Before": _date(cert.not_valid_before_utc), "Not_After": _date(cert.not_valid_after_utc),
            "CN": _cn(cert.subject), "Issuer": _cn(cert.issuer), "SAN": ",".join(san)}


@command("tls", "show")
def tls_show(node: Node, args: Args) -> Result:
    """Show information about TLS (PEM) certificates."""
    try:
        return True, Table([describe(path) for path in cert_files(node)], SHOW_COLUMNS)
    except (OSError, ValueError) as e:
        return False, f"Error: {e}"


@command("tls", "check")
def tls_check(node: Node, args: Args) -> Result:
    """Show information about expired or not yet valid certificates.

  vmq-admin tls check [--validity=<Seconds>]

  --validity=Seconds, -v    Check if certificates expire before n Seconds (default 2 days)"""
    try:
        validity = int(args.get("validity", args.get("v", DEFAULT_VALIDITY)))
    except ValueError:
        return False, "Error: --validity expects a number of seconds"
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    try:
        for path in cert_files(node):
            cert = read_cert(path)
            left = int((cert.not_valid_after_utc - now).total_seconds())
            until_valid = int((cert.not_valid_before_utc - now).total_seconds())
            if left < validity or until_valid > 0:
                rows.append({"File": path, "Not_Before": _date(cert.not_valid_before_utc),
                             "Not_After": _date(cert.not_valid_after_utc), "SecExp": left, "SecToVal": until_valid})
    except (OSError, ValueError) as e:
        return False, f"Error: {e}"
    return True, Table(rows, CHECK_COLUMNS) if rows else "All fine"


@command("tls", "clear-pem-cache")
def tls_clear_pem_cache(node: Node, args: Args) -> Result:
    """Cleares cached certifactes and forces reload.

  Every running ssl/wss listener reads its certfile, keyfile, cafile and crlfile again;
  new connections use them, connected clients stay."""
    for listener in node.listeners.all.values():
        if listener.running and listener.tls is not None:
            try:
                listener.tls = tls.server_context(listener.opts)
            except (OSError, ValueError) as e:
                return False, f"Error: listener {listener.kind}.{listener.name}: {e}"
    log.info("TLS certificates reloaded")
    return True, "Done"
