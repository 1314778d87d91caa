"""External S3 over TLS: SeaweedFS serving HTTPS with a certificate of a private CA made here,
reached through `ExternalS3Config` (`ca_file`, `verify_tls`) as a production MinIO would be."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from storage.config import EmbeddedS3Config, ExternalS3Config
from storage.media.embedded_s3 import EmbeddedS3Server, load_or_create_credentials
from storage.media.objects import ObjectStore
from tests.servers import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the server's certificate


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-keyout", key, "-out", cert,
    )  # fmt: skip
    return cert, key


def make_pki(folder: Path) -> Pki:
    ca, ca_key = make_ca(folder, "test-ca")
    other_ca, _ = make_ca(folder, "other-ca")
    key, request, cert = folder / "s3.key", folder / "s3.csr", folder / "s3.pem"
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
        "-out", request,
    )  # fmt: skip
    san = folder / "san.cnf"
    san.write_text("subjectAltName = IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", san, "-out", cert,
    )  # fmt: skip
    return Pki(ca, cert, key, other_ca)


class TlsS3Server(EmbeddedS3Server):
    """The embedded server, also serving S3 over HTTPS on `https_port`."""

    def __init__(self, config: EmbeddedS3Config, pki: Pki, https_port: int) -> None:
        super().__init__(config)
        self.pki = pki
        self.https_port = https_port

    def command(self) -> list[str]:
        return [
            *super().command(),
            f"-s3.port.https={self.https_port}",
            f"-s3.cert.file={self.pki.cert}",
            f"-s3.key.file={self.pki.key}",
        ]


@dataclass(frozen=True)
class TlsS3:
    pki: Pki
    config: EmbeddedS3Config
    https_port: int

    def external(self, **tls: object) -> ExternalS3Config:
        credentials = load_or_create_credentials(self.config.data_dir)
        return ExternalS3Config.model_validate(
            {
                "endpoint": f"127.0.0.1:{self.https_port}",
                "bucket": "tls-test",
                "access_key": credentials.access_key,
                "secret_key": SecretStr(credentials.secret_key),
                **tls,
            }
        )


@pytest.fixture(scope="module")
def tls_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsS3]:
    root = tmp_path_factory.mktemp("tls-s3")
    pki = make_pki(root)
    config = EmbeddedS3Config(data_dir=root / "s3", port=free_port(), bucket="tls-test")
    https_port = free_port()
    server = TlsS3Server(config, pki, https_port)
    server.start()
    try:
        yield TlsS3(pki, config, https_port)
    finally:
        server.stop()


def test_a_server_signed_by_the_configured_ca_is_used(tls_s3: TlsS3) -> None:
    store = ObjectStore.from_config(tls_s3.external(ca_file=tls_s3.pki.ca))
    assert store.client._base_url.is_https  # really over TLS, not the plain port
    store.ensure_bucket()
    stored = store.put("hq/gate/tls.bin", b"over tls", "application/octet-stream")
    assert store.read("hq/gate/tls.bin") == b"over tls"
    head = store.stat("hq/gate/tls.bin")
    assert head is not None and head.sha256 == stored.sha256


@pytest.mark.parametrize("tls", [{}, {"ca_file": "other"}], ids=["system CAs", "another CA"])
def test_a_server_the_trusted_cas_did_not_sign_is_refused(
    tls_s3: TlsS3, tls: dict[str, str]
) -> None:
    if tls:
        tls = {"ca_file": str(tls_s3.pki.other_ca)}
    store = ObjectStore.from_config(tls_s3.external(**tls))
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        store.client.bucket_exists("tls-test")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_can_be_turned_off_for_a_test_server(tls_s3: TlsS3) -> None:
    store = ObjectStore.from_config(tls_s3.external(verify_tls=False))
    store.ensure_bucket()
    store.put("hq/gate/unverified.bin", b"unverified", "application/octet-stream")
    assert store.read("hq/gate/unverified.bin") == b"unverified"
