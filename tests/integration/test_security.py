"""Transport security end to end: mutual TLS on the broker link, certificates made here.

The embedded broker (Tansu 0.6) cannot serve TLS itself (its CLI refuses `--cert` with
`--key`), and with `--authentication` it cannot bootstrap a SASL user (creating one needs an
authenticated connection first). So a TLS relay (tests/tlsproxy.py) terminates TLS in front of
the broker's plain listener and the broker advertises the relay: every connection rtim's clients
open is TLS, the server verified against the CA generated here, and the client authenticated by
its certificate, whose key is encrypted with a password rtim must never show.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from rtim.kafka.broker import EmbeddedBroker, free_port
from rtim.kafka.config import admin_config
from rtim.settings import Settings
from tests.tlsproxy import TlsRelay

pytestmark = pytest.mark.integration

KEY_PASSWORD = "s3cret-key-Passw0rd-never-shown"


class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (PEM files)."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        pem = serialization.Encoding.PEM

        def name(common: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

        def issue(
            subject: str, key: ec.EllipticCurvePrivateKey, *, ca: bool = False
        ) -> x509.Certificate:
            builder = (
                x509.CertificateBuilder()
                .subject_name(name(subject))
                .issuer_name(name("rtim test CA"))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if subject == "127.0.0.1":
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(subject))]),
                    critical=False,
                )
            return builder.sign(ca_key, hashes.SHA256())

        ca_key = ec.generate_private_key(ec.SECP256R1())
        server_key = ec.generate_private_key(ec.SECP256R1())
        client_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = directory / "ca.pem"
        self.ca.write_bytes(issue("rtim test CA", ca_key, ca=True).public_bytes(pem))
        self.server_cert = directory / "server.pem"
        self.server_cert.write_bytes(issue("127.0.0.1", server_key).public_bytes(pem))
        self.server_key = directory / "server.key"
        self.server_key.write_bytes(
            server_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.client_cert = directory / "client.pem"
        self.client_cert.write_bytes(issue("rtim-worker", client_key).public_bytes(pem))
        self.client_key = directory / "client.key"
        self.client_key.write_bytes(
            client_key.private_bytes(
                pem,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
            )
        )


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[TlsRelay, Certificates]]:
    """The embedded broker behind a mutual-TLS relay it advertises."""
    certs = Certificates(tmp_path)
    port = free_port()
    relay = TlsRelay(
        ("127.0.0.1", port),
        str(certs.server_cert),
        str(certs.server_key),
        client_ca=str(certs.ca),
    ).start()
    broker = EmbeddedBroker(port, log_dir=tmp_path, advertised=f"127.0.0.1:{relay.port}")
    try:
        broker.start()
        yield relay, certs
    finally:
        broker.stop()
        relay.stop()


@pytest.fixture
def tls_settings(
    tls_broker: tuple[TlsRelay, Certificates], rtim_settings: Callable[..., Settings]
) -> Settings:
    relay, certs = tls_broker
    return rtim_settings(
        broker=f"127.0.0.1:{relay.port}",
        security_protocol="SSL",
        ssl_ca_location=certs.ca,
        ssl_certificate_location=certs.client_cert,
        ssl_key_location=certs.client_key,
        ssl_key_password=KEY_PASSWORD,
    )


def _refused(settings: Settings, **conf: Any) -> bool:
    try:
        admin = AdminClient(admin_config(settings, **conf))
        admin.list_topics(timeout=4)
    except KafkaException:
        return True
    return False


def test_rtim_runs_over_mutual_tls_and_the_broker_link_refuses_what_is_not(
    tls_settings: Settings, applied_topics: Any, topic_io: Any, run_worker: Any, tmp_path: Path
) -> None:
    from tests.integration.test_worker import TOPIC_SCHEMA, request

    settings = applied_topics(tls_settings)  # topic admin over TLS
    io = topic_io(settings)
    worker = run_worker(settings, learner=False)
    topic, record = request("secure-1", "req-secure-1", "web")
    io.send(topic, TOPIC_SCHEMA[topic], [record])
    answers = io.read(
        "rtim.decisions.web",
        until=lambda rs: any(r["request_id"] == "req-secure-1" for r in rs),
        timeout=60,
    )
    assert [r["customer_id"] for r in answers if r["request_id"] == "req-secure-1"] == ["secure-1"]
    worker.stop()

    assert _refused(settings, **{"security.protocol": "PLAINTEXT"}), "plain text got in"
    no_certificate = {"ssl.certificate.location": None, "ssl.key.location": None,
                      "ssl.key.password": None}  # fmt: skip
    assert _refused(settings, **no_certificate), "no client certificate got in"
    other = tmp_path / "other-ca"
    other.mkdir()
    untrusting = {"ssl.ca.location": str(Certificates(other).ca)}  # a CA that signed nothing here
    assert _refused(settings, **untrusting), "a server the client does not trust got through"


def test_the_key_password_is_never_shown(tls_settings: Settings, applied_topics: Any) -> None:
    settings = applied_topics(tls_settings)
    env = {
        **os.environ,
        "RTIM_BROKER": settings.broker,
        "RTIM_TOPIC_PREFIX": settings.topic_prefix,
        "RTIM_SECURITY_PROTOCOL": "SSL",
        "RTIM_SSL_CA_LOCATION": str(settings.ssl_ca_location),
        "RTIM_SSL_CERTIFICATE_LOCATION": str(settings.ssl_certificate_location),
        "RTIM_SSL_KEY_LOCATION": str(settings.ssl_key_location),
        "RTIM_SSL_KEY_PASSWORD": KEY_PASSWORD,
        "RTIM_LOG_LEVEL": "debug",
    }
    listed = subprocess.run(
        [sys.executable, "-m", "rtim", "topics", "list"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert settings.topic("rtim.requests") in listed.stdout
    helps = [
        subprocess.run(
            [sys.executable, "-m", "rtim", command, "--help"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for command in ("worker", "topics", "dev")
    ]
    for output in (listed.stdout, listed.stderr, *(h.stdout + h.stderr for h in helps)):
        assert KEY_PASSWORD not in output
