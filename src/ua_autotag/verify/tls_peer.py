"""A local HTTPS server that records request headers, for clients that only speak TLS.

``@databricks/sql`` for Node.js always connects over HTTPS, so the plain-HTTP recorder
used for the Python clients cannot see it. The certificate is a throwaway self-signed
one made at start (``openssl``, else the ``cryptography`` package); the client is told
not to check it. Stdlib only; binds 127.0.0.1; every request is answered ``404``.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
from http.server import ThreadingHTTPServer
from typing import Any, Optional

from .http_peer import HeaderRecorder


class NoCertificate(RuntimeError):
    """Neither ``openssl`` nor ``cryptography`` is there to make a certificate."""


def make_certificate(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    openssl = shutil.which("openssl")
    if openssl:
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
        return cert, key
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise NoCertificate("no openssl command and no cryptography package") from None
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    with open(key, "wb") as fh:
        fh.write(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(cert, "wb") as fh:
        fh.write(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the handshake runs in the request's own thread, not in the accept loop
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-request are not errors here


class TlsHeaderRecorder(HeaderRecorder):
    """:class:`~ua_autotag.verify.http_peer.HeaderRecorder` over TLS (a throwaway cert):
    ``with TlsHeaderRecorder() as peer: ... peer.port ... peer.snapshot()``."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None

    def _make_server(self, handler: Any) -> ThreadingHTTPServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="ua-autotag-tls-")
        cert, key = make_certificate(self._tmp.name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = _TlsServer(("127.0.0.1", 0), handler)
        server.context = context
        return server

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
