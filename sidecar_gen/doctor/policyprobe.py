"""Run by `sidecar doctor` inside the claude container: which policy the gate and claude hold.

Doctor sends this file's text (`python3 -I -c TEXT ARGS`, as root, so the agent, user claude
there, can neither stop nor trace it): the program is the host's, so it works with an image of
any version that has python3, and it stays a real module here (linted, type-checked, tested).
Hence the standard library only and nothing of `sidecar_gen`.

It prints one JSON object: `status` and `policy` (the gate's `X-Sidecar-Policy` header, from
`GET /_ping` at DOCKER_HOST, from where the agent sits) or `error`; then, for each file named,
the sha256 of that file in the policy folder (None when it cannot be read).
Arguments: the policy folder's variable, its default, then the files to digest.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sys

TIMEOUT = 5.0


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (`DOCKER_HOST=unix://...`)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(TIMEOUT)
        sock.connect(self._path)
        self.sock = sock


def _connection(host: str) -> http.client.HTTPConnection:
    if host.startswith("tcp://"):
        name, _, port = host[6:].rstrip("/").rpartition(":")
        return http.client.HTTPConnection(name, int(port), timeout=TIMEOUT)
    if host.startswith("unix://"):
        return _UnixConnection(host[7:])
    raise ValueError(f"DOCKER_HOST is {host!r}")


def ask_gate(host: str) -> dict[str, object]:
    """The gate's answer to `GET /_ping` at `host`: its status and policy header, or why not."""
    try:
        conn = _connection(host)
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        response.read()
    except Exception as exc:  # whatever fails, doctor reports it
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"status": response.status, "policy": response.getheader("X-Sidecar-Policy")}


def digests(folder: str, names: list[str]) -> dict[str, str | None]:
    """Each named file's sha256 in `folder`; None for one that cannot be read."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as handle:
                out[name] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            out[name] = None
    return out


def main(argv: list[str]) -> int:
    """Print the gate's answer and the digests as one JSON object."""
    variable, default, *names = argv
    out = ask_gate(os.environ.get("DOCKER_HOST", ""))
    out.update(digests(os.environ.get(variable, default), names))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
