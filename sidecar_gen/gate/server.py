"""The gate's HTTP server: h11 on the client side, a checked request upstream, raw bytes after
an allowed exec start.

Threads: acceptor threads block in accept() and each serves the connection it got, including
the raw relay after an exec start (see `relay`). Every request on a kept-alive connection goes
through the same checks. Engine connections are pooled between client connections.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import h11

from sidecar_gen.errors import InputError, SidecarError
from sidecar_gen.gate.audit import DecisionLog
from sidecar_gen.gate.policy import (
    MAX_EXEC_BODY,
    Policy,
    RefusedError,
    Resolution,
    Route,
    check_exec_create,
    check_exec_start,
    classify,
    filter_listing,
    lookup,
    resolve,
    self_container_ids,
)
from sidecar_gen.gate.registry import ExecRegistry
from sidecar_gen.gate.relay import relay
from sidecar_gen.gate.upstream import (
    RECV,
    Response,
    Upgraded,
    UpstreamConn,
    UpstreamError,
    parse_upstream,
)
from sidecar_gen.model import Bridge

MAX_HEAD = 16 * 1024
IDLE_TIMEOUT = 600.0
UPSTREAM_POOL = 16
MIN_IDLE = 4  # acceptor threads kept waiting for the next connection
MAX_IDLE = 16
RESOLVE_TTL = 1.0  # seconds a container listing may be reused for allowing (see _resolve)
_FORWARD_HEADERS = frozenset({b"content-type", b"api-version", b"docker-experimental",
                              b"ostype", b"server", b"date", b"cache-control", b"pragma",
                              b"builder-version", b"swarm"})


class MalformedError(Exception):
    """Bad HTTP from the client: answered 400 and the connection closed."""


@dataclass
class GateOptions:
    """Everything `run_gate` needs; the CLI fills it from flags."""

    listen: str
    upstream: str = "unix:///var/run/docker.sock"
    config: Path | None = None  # bridge.yaml, re-read when it changes
    bridge: Bridge | None = None  # a fixed policy source (tests), instead of `config`
    strict: bool = False
    log: IO[str] | None = None  # decision log stream; None: stderr
    self_ids: frozenset[str] | None = None  # the gate's own container; None: detect
    proc_root: Path = field(default_factory=lambda: Path("/proc/self"))


def detect_self_ids(proc_root: Path = Path("/proc/self")) -> frozenset[str]:
    """The gate's own container id(s), from mountinfo, cgroup and hostname (empty on a host)."""

    def read(name: str) -> str:
        try:
            return (proc_root / name).read_text(errors="replace")
        except OSError:
            return ""

    return self_container_ids(read("mountinfo"), read("cgroup"), socket.gethostname())


class PolicySource:
    """The current policy; bridge.yaml is re-read on the first request after it changes."""

    def __init__(self, *, strict: bool, config: Path | None = None,
                 bridge: Bridge | None = None) -> None:
        self._strict = strict
        self._config = config
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._policy = (Policy.from_bridge(bridge, strict=strict, environ=os.environ) if bridge
                        else Policy.deny_all())
        self._error: str | None = None if bridge or config else "no bridge.yaml configured"

    def current(self) -> tuple[Policy, str | None]:
        """(policy, error): a deny-all policy and the reason while bridge.yaml is unusable."""
        if self._config is None:
            return self._policy, self._error
        try:
            st = self._config.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or self._stamp is None:
                self._reload(stamp)
            return self._policy, self._error

    def _reload(self, stamp: tuple[int, int, int] | None) -> None:
        from sidecar_gen.config import load_bridge

        assert self._config is not None
        self._stamp = stamp
        try:
            bridge = load_bridge(self._config)
        except SidecarError as exc:
            # Fail closed: an unreadable or invalid bridge.yaml allows nothing.
            self._policy, self._error = Policy.deny_all(), f"bridge.yaml unusable: {exc}"
            return
        self._policy = Policy.from_bridge(bridge, strict=self._strict, environ=os.environ)
        self._error = None


def _bind(listen: str) -> tuple[socket.socket, str]:
    if listen.startswith("tcp://"):
        hostport = listen[len("tcp://"):]
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            raise InputError(listen, "expected tcp://HOST:PORT")
        host = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, int(port)), family=family, backlog=256)
        except OSError as exc:
            raise InputError(listen, f"cannot listen: {exc}") from exc
        bound = sock.getsockname()
        return sock, f"tcp://{host}:{bound[1]}"
    if listen.startswith("unix://") and len(listen) > len("unix://"):
        path = listen[len("unix://"):]
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)  # a stale socket from an earlier run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(256)
        except OSError as exc:
            sock.close()
            raise InputError(listen, f"cannot listen: {exc}") from exc
        return sock, listen
    raise InputError(listen, "the listen address must be tcp://HOST:PORT or unix:///path")


def _json_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def _split_head(buf: bytes) -> int:
    """End offset of the request head (after the blank line), or -1 when incomplete."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    ends = [i + 4 for i in (crlf,) if i >= 0] + [i + 2 for i in (lf,) if i >= 0]
    return min(ends) if ends else -1


def _prescan(head: bytes) -> None:
    """Checks h11 is lenient about: bare LF, obsolete folding, CL together with TE."""
    lines = head.split(b"\r\n")
    if any(b"\n" in line or b"\r" in line for line in lines):
        raise MalformedError("bare CR or LF in the request head")
    names: list[bytes] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            raise MalformedError("obsolete header line folding")
        names.append(line.split(b":", 1)[0].strip().lower())
    if b"content-length" in names and b"transfer-encoding" in names:
        raise MalformedError("both Content-Length and Transfer-Encoding")
    if names.count(b"content-length") > 1 or names.count(b"transfer-encoding") > 1:
        raise MalformedError("repeated Content-Length or Transfer-Encoding")


class Gate:
    """A running gate: a listening socket and its connection threads."""

    def __init__(self, options: GateOptions) -> None:
        self._options = options
        self._upstream_path = parse_upstream(options.upstream)
        self._policy = PolicySource(strict=options.strict, config=options.config,
                                    bridge=options.bridge)
        self._log = DecisionLog(options.log if options.log is not None else _stderr())
        self._registry = ExecRegistry()
        self._cache: tuple[Policy, float, Resolution] | None = None
        self._cache_lock = threading.Lock()
        self._pool: list[UpstreamConn] = []
        self._pool_lock = threading.Lock()
        self.self_ids = (options.self_ids if options.self_ids is not None
                         else detect_self_ids(options.proc_root))
        self._sock, self.address = _bind(options.listen)
        self._stop = threading.Event()
        self._idle = 0  # acceptor threads waiting in accept()
        self._need = threading.Condition()

    # -- lifecycle -----------------------------------------------------------------------
    #
    # Acceptor threads block in accept() on the shared listening socket and serve the
    # connection they get themselves: no hand-off between threads on the request path. A
    # spawner thread keeps MIN_IDLE acceptors waiting (each held exec stream holds one).

    def serve_forever(self) -> None:
        """Accept and serve connections until `shutdown()`."""
        spawner = threading.Thread(target=self._keep_acceptors, daemon=True)
        spawner.start()
        try:
            while not self._stop.wait(3600):
                pass
        finally:
            self._stop.set()
            with self._need:
                self._need.notify_all()
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes every blocked accept()
            self._sock.close()
            if self.address.startswith("unix://"):
                with contextlib.suppress(OSError):
                    os.unlink(self.address[len("unix://"):])

    def shutdown(self) -> None:
        """Stop accepting; connections already open finish on their own."""
        self._stop.set()

    def _keep_acceptors(self) -> None:
        while True:
            with self._need:
                self._need.wait_for(lambda: self._stop.is_set() or self._idle < MIN_IDLE)
                if self._stop.is_set():
                    return
                missing = MIN_IDLE - self._idle
                self._idle += missing
            for _ in range(missing):
                threading.Thread(target=self._acceptor, daemon=True).start()

    def _acceptor(self) -> None:
        while not self._stop.is_set():
            try:
                client, addr = self._sock.accept()
            except OSError:
                if self._stop.is_set():
                    break
                time.sleep(0.05)  # e.g. out of file descriptors: do not spin
                continue
            with self._need:
                self._idle -= 1
                if self._idle < MIN_IDLE:
                    self._need.notify()
            peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and addr else "unix"
            self._serve_client(client, peer)
            with self._need:
                if self._idle >= MAX_IDLE:
                    return  # enough acceptors wait already
                self._idle += 1
        with self._need:
            self._idle -= 1

    # -- one client connection ---------------------------------------------------------

    def _serve_client(self, client: socket.socket, peer: str) -> None:
        if client.family in (socket.AF_INET, socket.AF_INET6):
            # Small request/response exchanges: never wait for Nagle.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(IDLE_TIMEOUT)
        upstream = self._take_upstream()
        buf = b""
        try:
            while True:
                result = self._one_request(client, peer, buf, upstream)
                if result is None:
                    return
                buf = result
        except (OSError, h11.ProtocolError):
            return
        except Exception as exc:
            # A bug must not kill the acceptor silently: record it, drop the connection
            # (nothing was forwarded for a request whose handling failed before the engine).
            upstream.close()
            self._log.record(peer=peer, method="-", path="-", decision="error",
                             reason=f"internal error: {type(exc).__name__}: {exc}")
            return
        finally:
            self._give_upstream(upstream)
            with contextlib.suppress(OSError):
                client.close()

    def _take_upstream(self) -> UpstreamConn:
        with self._pool_lock:
            if self._pool:
                return self._pool.pop()
        return UpstreamConn(self._upstream_path)

    def _give_upstream(self, upstream: UpstreamConn) -> None:
        # Engine connections are reused across clients (each dispatch opens new client
        # connections); only ones between complete exchanges go back.
        if upstream.reusable and not self._stop.is_set():
            with self._pool_lock:
                if len(self._pool) < UPSTREAM_POOL:
                    self._pool.append(upstream)
                    return
        upstream.close()

    def _read_head(self, client: socket.socket, buf: bytes) -> tuple[bytes, int] | None:
        while True:
            end = _split_head(buf)
            if end >= 0:
                if end > MAX_HEAD:
                    raise MalformedError("request head too large")
                return buf, end
            if len(buf) > MAX_HEAD:
                raise MalformedError("request head too large")
            data = client.recv(RECV)
            if not data:
                return None
            buf += data

    def _one_request(self, client: socket.socket, peer: str, buf: bytes,
                     upstream: UpstreamConn) -> bytes | None:
        """Serve one request; return the unread bytes for the next one, or None to close."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        method, target = "-", "-"
        try:
            got = self._read_head(client, buf)
            if got is None:
                return None
            buf, end = got
            _prescan(buf[:end])
            conn.receive_data(buf)
            event = conn.next_event()
            if not isinstance(event, h11.Request):
                raise MalformedError("incomplete request")
            method = event.method.decode("ascii", "replace")
            target = event.target.decode("ascii", "replace")
            headers = {k.lower(): v for k, v in event.headers}
            if event.http_version == b"1.0" and b"host" not in headers:
                raise MalformedError("HTTP/1.0 request without Host")
            body = self._read_body(client, conn)
        except MalformedError as exc:
            self._deny_malformed(client, conn, peer=peer, method=method, target=target,
                                reason=str(exc))
            return None
        except h11.RemoteProtocolError as exc:
            self._deny_malformed(client, conn, peer=peer, method=method, target=target,
                                reason=f"bad HTTP: {exc}")
            return None
        try:
            route = classify(method, target)
            if route.kind in ("ping", "version", "list", "inspect", "exec_json") and body:
                raise RefusedError("this request takes no body", status=400)
            keep = self._dispatch(client, conn, route, peer=peer, method=method, headers=headers,
                                  body=body, upstream=upstream)
        except RefusedError as exc:
            self._refuse(client, conn, exc, peer=peer, method=method, target=target)
            if exc.status == 400:
                return None
            keep = True
        except UpstreamError as exc:
            self._log.record(peer=peer, method=method, path=target, decision="error",
                             reason=str(exc))
            self._send(client, conn, 502, _json_body(f"sidecar gate: {exc}"))
            return None
        if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return None
        leftover, closed = conn.trailing_data
        return None if closed else bytes(leftover)

    def _read_body(self, client: socket.socket, conn: h11.Connection) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    client.sendall(conn.send(h11.InformationalResponse(status_code=100,
                                                                        headers=[])))
                data = client.recv(RECV)
                conn.receive_data(data)
                if not data:
                    raise MalformedError("connection closed inside the request body")
                continue
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_EXEC_BODY:
                    raise MalformedError(f"request body larger than {MAX_EXEC_BODY} bytes")
                chunks.append(bytes(event.data))
                continue
            if isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            raise MalformedError("unexpected event in the request body")

    # -- answers -------------------------------------------------------------------------

    def _send(self, client: socket.socket, conn: h11.Connection, status: int, body: bytes, *,
              headers: list[tuple[bytes, bytes]] | None = None, close: bool = False) -> None:
        hdrs = list(headers or [(b"Content-Type", b"application/json")])
        hdrs.append((b"Content-Length", str(len(body)).encode()))
        if close:
            hdrs.append((b"Connection", b"close"))
        try:
            out = conn.send(h11.Response(status_code=status, headers=hdrs))
            out += conn.send(h11.Data(data=body)) if body else b""
            out += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            # The request itself was unusable (no valid request line): answer by hand.
            reason = b"Bad Request" if status == 400 else b"Error"
            out = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (status, reason,
                                                                          len(body))) + body
        client.sendall(out)

    def _deny_malformed(self, client: socket.socket, conn: h11.Connection, *, peer: str,
                        method: str, target: str, reason: str) -> None:
        self._log.record(peer=peer, method=method, path=target, decision="deny", reason=reason)
        with contextlib.suppress(OSError):
            self._send(client, conn, 400,
                       _json_body(f"sidecar gate: malformed request: {reason}"), close=True)

    def _refuse(self, client: socket.socket, conn: h11.Connection, exc: RefusedError, *,
                peer: str, method: str, target: str, container: str | None = None) -> None:
        self._log.record(peer=peer, method=method, path=target, target=container,
                         decision="deny", reason=exc.reason)
        shown = target if len(target) <= 200 else target[:200] + "..."
        message = (f"sidecar gate: {method} {shown} is not allowed by .sidecar/bridge.yaml: "
                   f"{exc.reason}")
        self._send(client, conn, exc.status, _json_body(message), close=exc.status == 400)

    def _relay_response(self, client: socket.socket, conn: h11.Connection, method: str,
                        resp: Response, body: bytes | None = None) -> None:
        headers = [(k, v) for k, v in resp.headers if k.lower() in _FORWARD_HEADERS]
        if method == "HEAD":
            # h11 sends no body for HEAD; keep the engine's Content-Length as the answer's.
            length = dict((k.lower(), v) for k, v in resp.headers).get(b"content-length", b"0")
            out = conn.send(h11.Response(status_code=resp.status,
                                         headers=[*headers, (b"Content-Length", length)]))
            out += conn.send(h11.EndOfMessage())
            client.sendall(out)
            return
        self._send(client, conn, resp.status, resp.body if body is None else body,
                   headers=headers)

    # -- the decisions -------------------------------------------------------------------

    def _resolve(self, upstream: UpstreamConn, *,
                 fresh: bool = False) -> tuple[Policy, Resolution, bool]:
        """(policy, resolution, from_cache). A listing under RESOLVE_TTL old may be reused.

        Reuse is safe for allowing: an id found a target stays one (labels are immutable,
        names change only by a rename the gate refuses, a policy change drops the cache).
        Callers refresh before refusing and when the engine no longer knows a cached id.
        """
        policy, error = self._policy.current()
        if error:
            raise RefusedError(error)
        now = time.monotonic()
        if not fresh:
            with self._cache_lock:
                cached = self._cache
            if cached is not None and cached[0] is policy and now - cached[1] < RESOLVE_TTL:
                return policy, cached[2], True
        # Unversioned: the engine answers in its own version, whatever the client asked for.
        listing = upstream.get_json("/containers/json?all=1")
        if not isinstance(listing, list):
            raise UpstreamError("engine sent a container list that is not a list")
        resolution = resolve(policy, listing, self.self_ids)
        with self._cache_lock:
            self._cache = (policy, now, resolution)
        return policy, resolution, False

    def _target(self, upstream: UpstreamConn, ref: str, *,
                fresh: bool = False) -> tuple[Policy, Resolution, str | None]:
        policy, resolution, cached = self._resolve(upstream, fresh=fresh)
        cid = lookup(resolution, ref)
        if cached and (cid is None or cid not in resolution.by_id):
            policy, resolution, _ = self._resolve(upstream, fresh=True)
            cid = lookup(resolution, ref)
        return policy, resolution, cid

    def _dispatch(self, client: socket.socket, conn: h11.Connection, route: Route, *,
                  peer: str, method: str, headers: dict[bytes, bytes], body: bytes,
                  upstream: UpstreamConn) -> bool:
        raw = route.target.upstream_path() if route.kind in ("ping", "version") else None
        log_path = "/" + "/".join(
            ((route.target.version,) if route.target.version else ()) + route.target.segments)

        def allow(container: str | None, reason: str) -> None:
            self._log.record(peer=peer, method=method, path=log_path, target=container,
                             decision="allow", reason=reason)

        if route.kind in ("ping", "version"):
            assert raw is not None
            allow(None, route.kind)
            resp = upstream.request(method, raw)
            assert isinstance(resp, Response)
            self._relay_response(client, conn, method, resp)
            return True

        if route.kind == "list":
            policy, resolution, cached = self._resolve(upstream)
            allow(None, "container list, filtered to targets")
            resp = upstream.request("GET", route.target.upstream_path())
            assert isinstance(resp, Response)
            if resp.status != 200:
                self._relay_response(client, conn, method, resp)
                return True
            try:
                listing = resp.json()
            except ValueError as exc:
                raise UpstreamError("engine sent an invalid container list") from exc
            known = set(resolution.ids)
            if cached and isinstance(listing, list) and any(
                    isinstance(c, dict) and c.get("Id") not in known for c in listing):
                # A container newer than the cached listing: it may be a target.
                policy, resolution, _ = self._resolve(upstream, fresh=True)
            kept = filter_listing(listing, resolution.by_id)
            self._relay_response(client, conn, method, resp, body=json.dumps(kept).encode())
            return True

        if route.kind in ("inspect", "exec_create"):
            assert route.ref is not None
            fresh = False
            while True:
                policy, resolution, cid = self._target(upstream, route.ref, fresh=fresh)
                if cid is None or cid not in resolution.by_id:
                    if cid is None and route.ref in resolution.literal_missing:
                        self._log.record(peer=peer, method=method, path=log_path,
                                         target=route.ref, decision="deny",
                                         reason="configured container missing")
                        self._send(client, conn, 404,
                                   _json_body(f"No such container: {route.ref}"))
                        return True
                    raise RefusedError("container is not a target of any configured command")
                target_id: str = cid
                segs = (route.target.segments[0], cid, route.target.segments[2])
                path = route.target.upstream_path(segments=segs)
                if route.kind == "inspect":
                    allow(cid, "inspect a target")
                    resp = upstream.request("GET", path)
                else:
                    try:
                        doc = check_exec_create(policy, resolution.by_id[cid], body)
                    except RefusedError as exc:
                        self._refuse(client, conn, exc, peer=peer, method=method,
                                     target=log_path, container=cid)
                        return exc.status != 400
                    allow(cid, "exec into a target")
                    resp = upstream.request("POST", path, body=json.dumps(doc).encode(),
                                            headers=[("Content-Type", "application/json")])
                assert isinstance(resp, Response)
                if resp.status == 404 and not fresh:
                    # The container may have been recreated under the same name since the
                    # listing: decide again on a fresh one.
                    fresh = True
                    continue
                break
            if route.kind == "exec_create" and resp.status == 201:
                try:
                    exec_id = resp.json().get("Id")
                except (ValueError, AttributeError):
                    exec_id = None
                if isinstance(exec_id, str):
                    self._registry.add(exec_id, target_id)
            self._relay_response(client, conn, method, resp)
            return True

        # exec_start, exec_resize, exec_json: only for execs this gate created.
        assert route.ref is not None
        cid = self._registry.get(route.ref)
        if cid is None:
            raise RefusedError("exec id was not created through this gate")
        path = route.target.upstream_path()
        if route.kind == "exec_start":
            # bridge.yaml may have changed since the create: the container must still be a
            # target now (cheap: usually the cached listing).
            _policy, resolution, cached = self._resolve(upstream)
            if cid not in resolution.by_id and cached:
                _policy, resolution, _ = self._resolve(upstream, fresh=True)
            if cid not in resolution.by_id:
                raise RefusedError("the exec's container is no longer a target")
        else:
            _policy, error = self._policy.current()
            if error:
                raise RefusedError(error)
        if route.kind in ("exec_json", "exec_resize"):
            verb = "inspect" if route.kind == "exec_json" else "resize"
            allow(cid, f"{verb} an exec of this gate")
            resp = upstream.request(method, path)
            assert isinstance(resp, Response)
            self._relay_response(client, conn, method, resp)
            return True
        doc = check_exec_start(body)
        if headers.get(b"upgrade", b"").lower() != b"tcp":
            raise RefusedError("exec start needs 'Upgrade: tcp' and 'Connection: Upgrade'",
                          status=400)
        allow(cid, "start an exec of this gate")
        result = upstream.request("POST", path, body=json.dumps(doc).encode(),
                                  headers=[("Content-Type", "application/json")], upgrade=True)
        if isinstance(result, Response):
            self._relay_response(client, conn, method, result)
            return True
        self._relay_upgraded(client, conn, result)
        return False

    def _relay_upgraded(self, client: socket.socket, conn: h11.Connection,
                        up: Upgraded) -> None:
        headers = [(k, v) for k, v in up.headers if k.lower() == b"content-type"]
        headers += [(b"Connection", b"Upgrade"), (b"Upgrade", b"tcp")]
        client.sendall(conn.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                           reason=b"UPGRADED")))
        early, _closed = conn.trailing_data
        client.settimeout(None)
        up.sock.settimeout(None)
        try:
            relay(client, up.sock, to_upstream=bytes(early), to_client=up.pending)
        finally:
            up.sock.close()


def _stderr() -> IO[str]:
    import sys

    return sys.stderr


def run_gate(options: GateOptions, *, ready: Callable[[str], None] | None = None) -> int:
    """Run the gate until SIGTERM or SIGINT; the CLI's one entry point. Returns the exit code.

    bridge.yaml is loaded once up front so a broken file fails at start (`ConfigError`,
    `InputError`); later edits are picked up per request, and a broken edit refuses everything.
    """
    if options.config is not None and options.bridge is None:
        from sidecar_gen.config import load_bridge

        load_bridge(options.config)
    gate = Gate(options)
    if ready is not None:
        ready(gate.address)
    import signal

    if threading.current_thread() is threading.main_thread():
        # As a container's PID 1 the default SIGTERM action is ignored: stop on it explicitly.
        signal.signal(signal.SIGTERM, lambda _s, _f: gate.shutdown())
    try:
        gate.serve_forever()
    except KeyboardInterrupt:
        gate.shutdown()
    return 0
