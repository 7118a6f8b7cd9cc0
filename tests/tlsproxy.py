"""A TLS-terminating TCP relay for the security test.

Tansu 0.6 cannot serve TLS itself (its CLI rejects `--cert` together with `--key`, and `--cert`
alone leaves the listener in plain text), so the test puts this relay in front of it: clients
speak TLS to the relay, which forwards the bytes unchanged to the broker's plain listener. The
broker advertises the relay's address, so every connection a client opens goes through TLS.
The Kafka protocol passes unchanged; with `client_ca` the relay also authenticates clients by
their certificates (mutual TLS), the authentication Tansu 0.6 cannot do itself here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading

__all__ = ["TlsRelay"]


class TlsRelay:
    """Accept TLS on ``host:port`` (with `certfile`/`keyfile`) and relay to ``origin``.

    With `client_ca`, clients must present a certificate signed by it (mutual TLS).
    """

    def __init__(
        self,
        origin: tuple[str, int],
        certfile: str,
        keyfile: str,
        *,
        client_ca: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.origin = origin
        self.host = host
        with socket.socket() as sock:  # reserve a port now: the broker must advertise it
            sock.bind((host, 0))
            self.port: int = sock.getsockname()[1]
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certfile, keyfile)
        if client_ca is not None:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(client_ca)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TlsRelay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS relay did not start")
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(
                self._serve, self.host, self.port, ssl=self._context, ssl_handshake_timeout=5
            )
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.origin)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
