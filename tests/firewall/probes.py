"""Probes run inside a firewalled Claude container: DNS queries, HTTP, name resolution."""

from __future__ import annotations

import re

from firewall.conftest import Claude

DNS_QUERY = r"""
import random, socket, struct, sys
name, server, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
query = struct.pack(">HHHHHH", random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query += struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(4)
try:
    s.connect((server, port))
    s.send(query)
    data = s.recv(2048)
except socket.timeout:
    print("TIMEOUT")
except OSError as exc:
    print("REFUSED", type(exc).__name__)
else:
    print("RCODE", data[3] & 15, "ANSWERS", struct.unpack(">H", data[6:8])[0])
"""


def dns(claude: Claude, name: str, server: str = "127.0.0.1", port: int = 53,
        user: str = "claude") -> str:
    """Send one A query; return 'RCODE n ANSWERS m', 'REFUSED ...' or 'TIMEOUT'."""
    result = claude.container.exec_run(["python3", "-c", DNS_QUERY, name, server, str(port)],
                                       user=user)
    return str(result.output.decode().strip())


def http(claude: Claude, url: str, *flags: str) -> tuple[int, str]:
    """curl as the agent's user: (curl exit code, body). 7 = refused, 28 = timed out."""
    flag_text = " ".join(flags)
    _, out = claude.sh(f"curl -sS -g {flag_text} --connect-timeout 5 -m 8 '{url}' 2>&1; "
                          "echo \" exit=$?\"")
    match = re.search(r" exit=(\d+)\s*$", out)
    assert match, out
    return int(match.group(1)), out[: match.start()].strip()


def resolves(claude: Claude, name: str) -> list[str]:
    """Addresses getaddrinfo returns for `name` as the agent (through resolv.conf)."""
    _, out = claude.py(
        "import socket, sys\n"
        "try:\n"
        "    print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80)})))\n"
        "except socket.gaierror as e:\n"
        "    print('ERR', e.errno)\n".replace("sys.argv[1]", repr(name)))
    return [] if out.startswith("ERR") else out.split()
