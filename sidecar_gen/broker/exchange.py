"""One request through the broker: decided, rebuilt upstream with the real credential, and the
answer streamed back as it arrives, with secrets masked and usage read for the record.

Nothing the client sent is forwarded as bytes: the upstream request is rebuilt from the parsed
and checked parts (method, canonical target, filtered headers, the body as h11 decoded it),
so no framing trick reaches the upstream. Memory per request is bounded by the read size:
bodies are never held whole.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import h11

from sidecar_gen.broker.audit import Entry
from sidecar_gen.broker.credentials import Credentials
from sidecar_gen.broker.decide import DeniedError, Forward
from sidecar_gen.broker.endpoints import ANTHROPIC, GIT_PREFIX
from sidecar_gen.broker.http import ClientGoneError, ClientSocket
from sidecar_gen.broker.redact import Redactor
from sidecar_gen.broker.upstream import UpstreamConnection, UpstreamIOError
from sidecar_gen.broker.usage import UsageReader, request_model

MODEL_PEEK = 4096

# Never forwarded upstream: hop-by-hop and framing (rebuilt), the client's idea of the host,
# credentials (the broker's own replace them), proxy and forwarding headers, and encodings the
# masking could not see through (the upstream answers in identity).
DROP_REQUEST = frozenset({
    b"host", b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"content-length", b"upgrade", b"expect",
    b"x-api-key", b"authorization", b"cookie", b"forwarded", b"x-forwarded-for",
    b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip", b"via", b"accept-encoding"})
# Never passed back: hop-by-hop and framing, cookies, and anything that would make a client ask
# for a credential (git prompts for a password on a challenge).
DROP_RESPONSE = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"set-cookie", b"www-authenticate",
    b"location", b"alt-svc", b"strict-transport-security"})


@dataclass(frozen=True)
class Timeouts:
    """Idle limits, in seconds (never totals: a stream that keeps moving is never cut)."""

    body: float = 60.0  # between bytes of a request body
    upstream: float = 600.0  # between bytes from the upstream, its response head included
    client: float = 120.0  # a client must take response bytes within this


def upstream_headers(request: h11.Request, plan: Forward) -> list[tuple[bytes, bytes]]:
    """The client's headers minus DROP_REQUEST, plus host, framing, identity encoding and the
    real credential."""
    out: list[tuple[bytes, bytes]] = [(b"Host", plan.origin.host_header)]
    framing: tuple[bytes, bytes] | None = None
    for name, value in request.headers:
        lower = name.lower()
        if lower == b"content-length":
            framing = (b"Content-Length", value)
        elif lower == b"transfer-encoding":
            framing = (b"Transfer-Encoding", b"chunked")
        elif lower not in DROP_REQUEST:
            out.append((name, value))
    if framing is not None:
        out.append(framing)
    out.append((b"Accept-Encoding", b"identity"))
    if plan.credential is not None:
        out.append(plan.credential)
    return out


def map_redirect(location: bytes, plan: Forward) -> bytes | None:
    """A redirect's target as a path on the broker when it stays on the same upstream under its
    prefix (the client then asks the broker, which decides again); None for anywhere else."""
    try:
        base = f"https://{plan.origin.host_header.decode()}{plan.upstream_target.decode()}"
        absolute = urlsplit(urljoin(base, location.decode("ascii")))
        port = absolute.port or 443
    except (UnicodeDecodeError, ValueError):
        return None
    if absolute.scheme != "https" or (absolute.hostname or "").lower() != plan.origin.host \
            or port != plan.origin.port or absolute.username or absolute.password:
        return None
    prefix = plan.origin.prefix
    if not absolute.path.startswith(prefix + "/"):
        return None
    path = absolute.path[len(prefix):]
    if plan.endpoint.service != ANTHROPIC:
        path = GIT_PREFIX + path
    return (path + (f"?{absolute.query}" if absolute.query else "")).encode("ascii")


def response_headers(response: h11.Response, redactor: Redactor,
                     location: bytes | None) -> list[tuple[bytes, bytes]]:
    """The upstream's headers minus DROP_RESPONSE, values masked; a mapped Location."""
    out = [(name, redactor.mask(value)) for name, value in response.headers
           if name.lower() not in DROP_RESPONSE]
    if location is not None:
        out.append((b"Location", location))
    return out


class Exchange:
    """Forward one decided request and stream its answer back."""

    def __init__(self, *, client: ClientSocket, conn: h11.Connection, request: h11.Request,
                 plan: Forward, upstream: UpstreamConnection, credentials: Credentials,
                 entry: Entry, timeouts: Timeouts) -> None:
        self.client = client
        self.conn = conn
        self.request = request
        self.plan = plan
        self.upstream = upstream
        self.entry = entry
        self.timeouts = timeouts
        self.redactor = Redactor(credentials.secrets())
        self.sent_head = False

    def send_client(self, event: h11.InformationalResponse | h11.Response | h11.Data |
                    h11.EndOfMessage) -> None:
        """Render one event on the client's connection and send it."""
        data = self.conn.send(event)
        if data:
            self.client.send(data, self.timeouts.client)

    def _flush(self, out: list[bytes]) -> None:
        if out:
            self.client.send(out[0] if len(out) == 1 else b"".join(out), self.timeouts.client)
            out.clear()

    def _body(self, out: list[bytes], chunk: bytes) -> None:
        """Frame `chunk` for the client without copying it (h11 passes the data through; only
        chunked framing adds its small pieces around it)."""
        out.extend(self.conn.send_with_data_passthrough(h11.Data(data=chunk)) or ())

    def forward_request(self) -> None:
        """Send the rebuilt head, then stream the body upstream as it arrives."""
        self.upstream.send(h11.Request(method=self.request.method,
                                       target=self.plan.upstream_target,
                                       headers=upstream_headers(self.request, self.plan)))
        if self.conn.they_are_waiting_for_100_continue:
            self.send_client(h11.InformationalResponse(status_code=100, headers=[]))
        peek = bytearray()
        limit = self.plan.endpoint.max_body
        if self.client.buffer:  # (h11 takes empty bytes for the end of the connection)
            self.conn.receive_data(self.client.buffer)
            self.client.buffer = b""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise DeniedError(400, f"bad request body: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    data = self.client.recv(self.timeouts.body)
                except TimeoutError:
                    raise DeniedError(408, f"request body idle for {self.timeouts.body:g} s") \
                        from None
                if not data:
                    raise ClientGoneError("closed inside the request body")
                self.conn.receive_data(data)
                continue
            if isinstance(event, h11.Data):
                self.entry.request_bytes += len(event.data)
                if self.entry.request_bytes > limit:
                    raise DeniedError(413, f"request body larger than {limit} bytes")
                if self.plan.endpoint.usage and len(peek) < MODEL_PEEK:
                    peek += event.data[:MODEL_PEEK - len(peek)]
                self.upstream.send(h11.Data(data=event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                self.upstream.send(h11.EndOfMessage())
                if peek:
                    self.entry.model = request_model(bytes(peek))
                return
            raise DeniedError(400, "unexpected event in the request")

    def read_response(self) -> h11.Response:
        """The upstream's final response head (informational ones skipped)."""
        while True:
            event = self.upstream.next_event()
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return event
            raise UpstreamIOError("the upstream closed without a response")

    def relay_response(self, response: h11.Response) -> None:
        """Check the response head, send it, then stream the body back as it arrives."""
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers}
        location = None
        if 300 <= status < 400 and b"location" in headers:
            location = map_redirect(headers[b"location"], self.plan)
            if location is None:
                raise DeniedError(502, f"the upstream redirected ({status}) to another host or "
                                   "outside its API: not followed")
        if status == 401 and self.plan.endpoint.service != ANTHROPIC:
            raise DeniedError(403, "GitHub refused the token configured on the host (401): set a "
                               "valid one with `sidecar auth set --github-token` on the host")
        usage = UsageReader(headers.get(b"content-type")) if self.plan.endpoint.usage else None
        self.entry.status = status
        self.send_client(h11.Response(status_code=status, reason=response.reason,
                                      headers=response_headers(response, self.redactor,
                                                               location)))
        self.sent_head = True
        # The body's first piece leaves at once (time to first byte); after it, what arrived
        # together leaves together: the output of every event already read is sent at once,
        # right before the broker would wait for the upstream again.
        out: list[bytes] = []
        first = True
        while True:
            event = self.upstream.poll()
            if event is h11.NEED_DATA:
                self._flush(out)
                self.upstream.fill()
                continue
            if isinstance(event, h11.Data):
                # h11 hands each piece over as a fresh buffer of its own: masked in place of a
                # copy, framed without one (the bulk path's cost is its copies: bench/broker.py).
                chunk = self.redactor.feed(event.data)
                if usage is not None:
                    usage.feed(chunk)
                self.entry.response_bytes += len(event.data)
                if chunk:
                    self._body(out, chunk)
                    if first:
                        first = False
                        self._flush(out)
            elif isinstance(event, h11.EndOfMessage):
                tail = self.redactor.flush()
                if tail:
                    if usage is not None:
                        usage.feed(tail)
                    self._body(out, tail)
                out.append(self.conn.send(h11.EndOfMessage()) or b"")
                self._flush(out)
                break
            else:
                self._flush(out)
                raise UpstreamIOError("the upstream closed the response early")
        if usage is not None:
            usage.finish()
            self.entry.model = usage.model or self.entry.model
            self.entry.tokens = usage.tokens
        self.entry.redacted = self.redactor.count

    def client_can_continue(self) -> bool:
        """True when the client's connection may carry the next request."""
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    def leftover(self) -> bytes:
        """Bytes the client sent after this request (the start of the next one)."""
        data, _closed = self.conn.trailing_data
        return bytes(data)


def elapsed_ms(start: float) -> float:
    """Milliseconds since `start` (a monotonic time)."""
    return (time.monotonic() - start) * 1000
