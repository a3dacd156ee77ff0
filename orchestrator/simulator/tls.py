"""HTTPS for the simulator: a certificate made at start, or one given as files.

    made_certificate(directory) -> (server context, CA file)   `simulate --tls`
    given_certificate(cert, key) -> server context             `--tls-cert --tls-key`

The certificate made at start is issued by a throwaway CA (trustme, the extra
`[simulator]`) for 127.0.0.1, ::1 and localhost; the CA's certificate is written
to `directory` so that a client can trust it (`orchestrator run --ca-bundle FILE`),
as an operator trusts a company CA. Its key is never written anywhere.
"""

from __future__ import annotations

import ssl
from pathlib import Path

CA_FILE = "simulator-ca.pem"
HOSTS = ("127.0.0.1", "::1", "localhost")


class TlsSetupError(Exception):
    """The simulator cannot serve HTTPS as asked (the message says why and what to do)."""


def made_certificate(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a new certificate for the loopback names, and the file
    holding the certificate of the CA that issued it."""
    try:
        import trustme  # only for --tls: the extra [simulator]
    except ImportError:
        raise TlsSetupError(
            "--tls makes its certificate with the trustme package: "
            "pip install 'ecs-reinstall-orchestrator[simulator]'"
        ) from None
    ca = trustme.CA(organization_name="orchestrator simulator")
    leaf = ca.issue_cert(*HOSTS)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    path = directory / CA_FILE
    ca.cert_pem.write_to_path(str(path))
    return context, path


def given_certificate(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context with the certificate chain in `cert` and its key in `key`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        # The reason only (e.g. "[SSL] PEM lib"): never the key file's content.
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or "unusable"
        raise TlsSetupError(
            f"--tls-cert {cert} / --tls-key {key}: cannot load the certificate and key ({reason})"
        ) from None
    return context
