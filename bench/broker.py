"""Benchmark the credential broker against going straight to the upstream, side by side.

    .venv/bin/python bench/broker.py [--runs 30] [--mib 50] [--streams 20]

The upstream is the tests' scripted Messages API over TLS (test CA made with openssl), in a
process of its own; `sidecar broker` runs as a subprocess in front of it, as in its container.
The same client (h11 over a socket) asks both: straight to the upstream over TLS (what Claude
Code does without the broker), and through the broker over plain HTTP. Prints medians and
ratios (broker / direct), the runs alternating so machine noise hits both alike:
- time to the first streamed byte and total time of a scripted SSE answer (40 events), on a
  kept-alive connection (as Claude Code keeps one) and on a new connection each time (goal:
  <= 1.05x plus 2 ms);
- throughput of a MIB MiB streamed body (goal: >= 0.9x);
- the broker's memory (RSS) idle, and its peak with STREAMS streams of 15 s each open at once
  (goal: <= 40 MiB).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h11
from common import REPO, free_port, rss_kib

STANDIN = """
import sys, time
sys.path.insert(0, {tests!r})
from broker.standin import StandIn, TestCA, Reply, Pause, text_reply
from pathlib import Path
MIB = {mib}
BLOCK = b"x" * 65536

def script(record):
    if record.path == "/v1/models":  # the big body (a GET keeps the client simple)
        return Reply(200, [("Content-Type", "application/octet-stream")],
                     [BLOCK] * (MIB * 16), framing="length")
    if b'"claude-slow"' in record.body:  # a long stream, for the memory figure
        return text_reply("y" * 60, pieces=60, pause=0.25)
    return text_reply("z" * 400, pieces=40)

ca = TestCA(Path({folder!r}), names=("localhost",))
server = StandIn(script, ca=ca, port={port})
print("ready", flush=True)
time.sleep(1e9)
"""


class Client:
    """One kept-alive HTTP/1.1 connection (TLS or not) read with h11."""

    def __init__(self, port: int, context: ssl.SSLContext | None) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = (context.wrap_socket(sock, server_hostname="localhost")
                                    if context else sock)
        self.conn = h11.Connection(h11.CLIENT)

    def ask(self, method: bytes, target: bytes, body: bytes = b"") -> tuple[float, float, int]:
        """(seconds to the first body byte, seconds in all, body bytes)."""
        headers = [(b"Host", b"localhost"), (b"x-api-key",
                                             b"sk-ant-api03-sidecar-broker-placeholder")]
        if body:
            headers.append((b"Content-Length", b"%d" % len(body)))
        start = time.perf_counter()
        data = self.conn.send(h11.Request(method=method, target=target, headers=headers))
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage())
        self.sock.sendall(data)
        first = 0.0
        size = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(1 << 18))
                continue
            if isinstance(event, h11.Response):
                if event.status_code != 200:
                    sys.exit(f"{target!r}: status {event.status_code}")
            elif isinstance(event, h11.Data):
                if not first:
                    first = time.perf_counter() - start
                size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                total = time.perf_counter() - start
                self.conn.start_next_cycle()
                return first, total, size

    def close(self) -> None:
        self.sock.close()


BODY = b'{"model":"claude-bench","max_tokens":64,"stream":true,"messages":[]}'
SLOW = b'{"model":"claude-slow","max_tokens":64,"stream":true,"messages":[]}'


@contextlib.contextmanager
def upstream(mib: int) -> Iterator[tuple[int, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="sidecar-bbench-"))
    port = free_port()
    code = STANDIN.format(tests=str(REPO / "tests"), mib=mib, folder=str(folder / "ca"),
                          port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            sys.exit("the stand-in did not start")
        yield port, folder / "ca" / "ca.pem"
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def broker(upstream_port: int, ca: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    secrets = ca.parent.parent / "secrets"
    secrets.mkdir()
    (secrets / "api-key").write_text("sk-ant-api03-bench-real-key\n")
    port = free_port()
    argv = [str(Path(sys.executable).parent / "sidecar"), "broker",
            f"--listen=tcp://127.0.0.1:{port}", f"--upstream=https://localhost:{upstream_port}",
            f"--ca-file={ca}", f"--secrets={secrets}", f"--log={ca.parent.parent / 'audit.log'}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the broker did not start: {proc.stderr.read().decode()}"
                         if proc.stderr else "the broker did not start")
            time.sleep(0.05)
    try:
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _median_pair(samples: list[tuple[float, float, int]]) -> tuple[float, float]:
    return (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))


def latency(runs: int, direct_port: int, broker_port: int, *, context: ssl.SSLContext,
            fresh: bool) -> None:
    samples: dict[str, list[tuple[float, float, int]]] = {"direct": [], "broker": []}
    kept = {"direct": Client(direct_port, context), "broker": Client(broker_port, None)}
    for client in kept.values():  # warm up: first requests pay imports and handshakes
        client.ask(b"POST", b"/v1/messages?beta=true", BODY)
    for index in range(runs):
        order = ["direct", "broker"] if index % 2 == 0 else ["broker", "direct"]
        for name in order:
            if fresh:
                start = time.perf_counter()
                client = Client(direct_port if name == "direct" else broker_port,
                                context if name == "direct" else None)
                first, total, size = client.ask(b"POST", b"/v1/messages?beta=true", BODY)
                setup = time.perf_counter() - start - total
                samples[name].append((first + setup, total + setup, size))
                client.close()
            else:
                samples[name].append(kept[name].ask(b"POST", b"/v1/messages?beta=true", BODY))
    for client in kept.values():
        client.close()
    (d_first, d_total), (b_first, b_total) = (_median_pair(samples["direct"]),
                                              _median_pair(samples["broker"]))
    what = "new connection each time" if fresh else "kept-alive connection"
    print(f"SSE answer, {what} ({runs} runs each, medians):")
    for label, direct, via in (("first byte", d_first, b_first), ("total", d_total, b_total)):
        goal = via <= direct * 1.05 + 0.002
        print(f"  {label:<10} direct {direct * 1000:7.2f} ms  broker {via * 1000:7.2f} ms  "
              f"ratio {via / direct:5.2f}  +{(via - direct) * 1000:5.2f} ms  "
              f"(goal <= 1.05x + 2 ms: {'met' if goal else 'NOT met'})")


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def throughput(rounds: int, mib: int, direct_port: int, broker_port: int, *,
               context: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    rates: dict[str, list[float]] = {"direct": [], "broker": []}
    cpu: dict[str, list[float]] = {"client direct": [], "client broker": [], "broker": []}
    for index in range(rounds):
        order = ["direct", "broker"] if index % 2 == 0 else ["broker", "direct"]
        for name in order:
            client = Client(direct_port if name == "direct" else broker_port,
                            context if name == "direct" else None)
            mine, its = _own_cpu(), _cpu_of(proc.pid)
            _first, total, size = client.ask(b"GET", b"/v1/models")
            cpu[f"client {name}"].append((_own_cpu() - mine) / mib)
            if name == "broker":
                cpu["broker"].append((_cpu_of(proc.pid) - its) / mib)
            client.close()
            if size != mib * 1024 * 1024:
                sys.exit(f"{name}: {size} bytes, not {mib} MiB")
            rates[name].append(size / total / 1e6)
    direct, via = statistics.median(rates["direct"]), statistics.median(rates["broker"])
    print(f"throughput of a {mib} MiB streamed body ({rounds} rounds each, medians): direct "
          f"{direct:6.1f} MB/s  broker {via:6.1f} MB/s  ratio {via / direct:4.2f} "
          f"(goal >= 0.9: {'met' if via / direct >= 0.9 else 'NOT met'})")
    per = {name: statistics.median(values) * 1000 for name, values in cpu.items()}
    print(f"  CPU per MiB (medians): the client straight over TLS {per['client direct']:.2f} ms;"
          f" through the broker: the broker {per['broker']:.2f} ms + the client "
          f"{per['client broker']:.2f} ms (one more process on the path: where CPUs are "
          "short, the relay's own decrypt-and-send sets the pace)")


def memory(streams: int, broker_port: int, proc: subprocess.Popen[bytes]) -> None:
    idle, _ = rss_kib(proc.pid)
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(proc.pid)[0])
            time.sleep(0.05)

    finished: list[int] = []

    def one() -> None:
        client = Client(broker_port, None)
        _first, total, size = client.ask(b"POST", b"/v1/messages?beta=true", SLOW)
        client.close()
        if total > 10 and size > 0:  # it really streamed for its whole 15 s
            finished.append(size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=one) for _ in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    if len(finished) != streams:
        sys.exit(f"only {len(finished)} of {streams} streams ran to their end")
    print(f"broker RSS: idle {idle / 1024:.1f} MiB, with {streams} concurrent streams "
          f"{peak[0] / 1024:.1f} MiB (goal <= 40 MiB: "
          f"{'met' if peak[0] <= 40 * 1024 else 'NOT met'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=20)
    options = parser.parse_args()
    with upstream(options.mib) as (up_port, ca), broker(up_port, ca) as (port, proc):
        context = ssl.create_default_context(cafile=str(ca))
        memory_first = rss_kib(proc.pid)[0]
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; broker RSS at "
              f"start {memory_first / 1024:.1f} MiB")
        latency(options.runs, up_port, port, context=context, fresh=False)
        latency(options.runs, up_port, port, context=context, fresh=True)
        throughput(options.rounds, options.mib, up_port, port, context=context, proc=proc)
        memory(options.streams, port, proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
