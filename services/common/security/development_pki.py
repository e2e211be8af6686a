"""Certificates for one run of the demo, the benchmark or the test suite: a development CA
in a folder, a certificate per principal issued on first use, and the credentials and
command-line flags that present them. Safe to use from many threads at once."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from services.common.security.certificates import DevelopmentCA
from services.common.security.transport import TlsFiles, Transport
from shared.principals import Principal


class DevelopmentPKI:
    def __init__(self, directory: Path, name: str = "gongji development CA") -> None:
        self.directory = directory
        self.ca = DevelopmentCA.open(directory, name)
        # Racing callers ask for the same principal at once; one of them issues it.
        self._lock = threading.RLock()
        self._credentials: dict[tuple[Principal, Path | None], grpc.ChannelCredentials] = {}

    @property
    def ca_file(self) -> Path:
        return self.ca.ca_file

    def files(self, principal: Principal) -> TlsFiles:
        with self._lock:
            issued = self.ca.issue(principal)
        return TlsFiles(issued.cert, issued.key, self.ca_file)

    def transport(self, principal: Principal) -> Transport:
        return Transport.mutual_tls(self.files(principal), principal)

    def args(self, principal: Principal) -> list[str]:
        """The `gongji serve` / `gongji health` flags that present this principal."""
        files = self.files(principal)
        return ["--tls-cert", str(files.cert), "--tls-key", str(files.key), "--tls-ca", str(files.ca)]

    def credentials(self, principal: Principal, trusted_ca: Path | None = None) -> grpc.ChannelCredentials:
        """Channel credentials presenting the principal, trusting `trusted_ca` (by default this CA)."""
        with self._lock:
            if (principal, trusted_ca) not in self._credentials:
                files = self.files(principal)
                ca = (trusted_ca or files.ca).read_bytes()
                self._credentials[principal, trusted_ca] = grpc.ssl_channel_credentials(
                    ca, files.key.read_bytes(), files.cert.read_bytes()
                )
            return self._credentials[principal, trusted_ca]

    def channel(self, address: str, principal: Principal, trusted_ca: Path | None = None) -> grpc.Channel:
        """A blocking channel presenting the principal's certificate."""
        return grpc.secure_channel(address, self.credentials(principal, trusted_ca))

    def aio_channel(self, address: str, principal: Principal) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, self.credentials(principal))
