"""Run by `sidecar doctor` inside the claude container: the broker as the agent reaches it, and
whether a real secret's bytes are anywhere the agent can read.

Sent as program text (`python3 -I -c TEXT MODE ARGS`, like `policyprobe`): the standard library
only and nothing of `sidecar_gen`. Two modes, each printing one JSON object:

    broker URL
        run as root: `GET /sidecar-broker/health` (its `credentials` kinds) and `HEAD
        /api/hello` through the broker (does its upstream answer?).
    search ALPHABET KEY LENGTH DIGEST [DIGEST...] -- ROOT...
        run as user claude, so only what the agent can read is read: every regular file under
        each ROOT and the environment of every process it can read (/proc/PID/environ). The
        secret itself never reaches the container (a command line is readable there while it
        runs): doctor sends a random KEY, the secret's LENGTH and the HMAC-SHA256 under KEY of
        each secret. Each word of the secret's alphabet (and each LENGTH window of a longer
        one) is digested and compared (ALPHABET `words`; `visible`: every run of visible characters,
for a secret with other characters). Prints the paths where a digest matched; the bytes read
        are bounded (MAX_FILE per file, MAX_TOTAL in all: `truncated` says when reached).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import stat
import sys
from urllib.parse import urlsplit

TIMEOUT = 5.0
MAX_FILE = 8 << 20
MAX_TOTAL = 128 << 20
MAX_FILES = 50000
# Anthropic keys and tokens and GitHub tokens are words of this alphabet; a secret with other
# characters is searched in windows over every run of visible characters.
WORD = re.compile(rb"[A-Za-z0-9_\-.~+/]+")
VISIBLE = re.compile(rb"[\x21-\x7e]+")


def _broker(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    out: dict[str, object] = {}
    try:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                          timeout=TIMEOUT)
        conn.request("GET", "/sidecar-broker/health")
        answer = conn.getresponse()
        body = answer.read(65536)
        out["health_status"] = answer.status
        out["credentials"] = json.loads(body).get("credentials") if answer.status == 200 else None
        conn.request("HEAD", "/api/hello")
        hello = conn.getresponse()
        hello.read()
        out["upstream_status"] = hello.status
        conn.close()
    except (OSError, ValueError, http.client.HTTPException) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


class _Search:
    def __init__(self, key: bytes, length: int, digests: set[bytes]) -> None:
        self.key, self.length, self.digests = key, length, digests
        self.found: list[str] = []
        self.files = 0
        self.total = 0
        self.truncated = False
        self.pattern = WORD

    def _hit(self, data: bytes) -> bool:
        size = self.length
        for match in self.pattern.finditer(data):
            word = match.group()
            if len(word) < size:
                continue
            for start in range(len(word) - size + 1):
                if hmac.new(self.key, word[start:start + size], hashlib.sha256).digest() \
                        in self.digests:
                    return True
        return False

    def read(self, path: str) -> None:
        if self.total >= MAX_TOTAL or self.files >= MAX_FILES:
            self.truncated = True
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) and not path.startswith("/proc/"):
                return
            chunks = []
            left = min(MAX_FILE, MAX_TOTAL - self.total)
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError:
            return
        finally:
            os.close(fd)
        data = b"".join(chunks)
        self.files += 1
        self.total += len(data)
        if self._hit(data):
            self.found.append(path)

    def walk(self, root: str) -> None:
        for folder, dirs, files in os.walk(root, onerror=None, followlinks=False):
            if folder.startswith("/proc"):
                dirs[:] = []
                continue
            dirs.sort()
            for name in sorted(files):
                self.read(os.path.join(folder, name))


def _search(args: list[str]) -> dict[str, object]:
    split = args.index("--")
    key, length = bytes.fromhex(args[1]), int(args[2])
    search = _Search(key, length, {bytes.fromhex(d) for d in args[3:split]})
    search.pattern = VISIBLE if args[0] == "visible" else WORD
    for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
        if pid != str(os.getpid()):
            search.read(f"/proc/{pid}/environ")
    for root in args[split + 1:]:
        search.walk(root)
    return {"found": search.found, "files": search.files, "bytes": search.total,
            "truncated": search.truncated}


def main() -> None:
    """`broker URL` or `search ...` (see the module's docstring)."""
    mode, args = sys.argv[1], sys.argv[2:]
    result = _broker(args[0]) if mode == "broker" else _search(args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
