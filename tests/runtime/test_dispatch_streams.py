"""Volume and terminal behaviour of the dispatcher, against the real engine."""

from __future__ import annotations

import fcntl
import hashlib
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from typing import Any

import pytest

from runtime.conftest import DispatchEnv, PtyRun

Make = Callable[[dict[str, Any]], DispatchEnv]
MIB = 1024 * 1024
VOLUME = 256 * MIB
# Peak RSS allowed for the dispatcher while moving 256 MiB: a Python process starts at ~10 MiB;
# anything that buffers the stream would need hundreds.
RSS_LIMIT_KIB = 40 * 1024
# Runs a program as a forked (not vforked) child of this small process, so the child's peak
# RSS (ru_maxrss, kept across exec) is its own and not inherited from pytest's memory.
MEASURE = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "_pid, status, usage = os.wait4(pid, 0)\n"
    "os.write(2, b'MAXRSS=%d' % usage.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _pattern_chunks(total: int, seed: bytes) -> Any:
    """Deterministic non-trivial data: every 1 MiB block differs (no long zero runs)."""
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    for index in range(total // MIB):
        yield index.to_bytes(8, "big") + block[8:]


@pytest.mark.slow
def test_256_mib_round_trip_is_byte_exact_with_flat_memory(dispatch_env: Make, box: str) -> None:
    env = dispatch_env({"version": "1", "commands": {
        "cat": {"container": box, "exec": "cat"},
        "sum": {"container": box, "exec": "sha256sum"},
    }})
    sent = hashlib.sha256()
    received = hashlib.sha256()
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", MEASURE, env.cmd("cat")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd="/tmp", env=env.env)
    assert proc.stdin and proc.stdout and proc.stderr

    def feed() -> None:
        assert proc.stdin
        for chunk in _pattern_chunks(VOLUME, b"round-trip"):
            sent.update(chunk)
            proc.stdin.write(chunk)
        proc.stdin.close()

    feeder = threading.Thread(target=feed)
    feeder.start()
    size = 0
    while chunk := proc.stdout.read1(MIB):
        received.update(chunk)
        size += len(chunk)
    feeder.join()
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 0, stderr
    assert size == VOLUME
    assert received.hexdigest() == sent.hexdigest()
    peak = int(stderr.rsplit("MAXRSS=", 1)[1])
    assert peak < RSS_LIMIT_KIB, f"dispatcher peak RSS {peak} KiB"

    # Upload direction on its own: the container hashes what it read from our stdin.
    upload = hashlib.sha256()
    data = b"".join(_pattern_chunks(32 * MIB, b"upload"))
    upload.update(data)
    result = env.run("sum", input=data, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == upload.hexdigest()


def test_tty_under_a_real_pty(dispatch_env: Make, box: str) -> None:
    env = dispatch_env({"version": "1", "commands": {
        # Give the resize that follows the start a moment: API 1.41 has no size at create.
        "term": {"container": box, "exec": ["sh", "-c", "sleep 0.3; tty; stty size; stty -a"]},
        "pipe": {"container": box, "exec": ["sh", "-c", "tty; echo rc=$?"]},
    }})
    # The child records the terminal settings before and after the dispatcher ran.
    probe = (
        "import subprocess, sys, termios\n"
        "before = termios.tcgetattr(0)\n"
        "rc = subprocess.call(sys.argv[1:])\n"
        "after = termios.tcgetattr(0)\n"
        "print(f'\\nRC={rc} RESTORED={before == after}', flush=True)\n"
    )
    run = PtyRun([sys.executable, "-c", probe, env.cmd("term")], env.env, rows=33, cols=101)
    status = run.wait()
    text = run.text
    assert status == 0, text
    assert "/dev/pts/" in text
    assert "33 101" in text
    assert "RC=0 RESTORED=True" in text
    # Raw mode locally: the remote terminal does the newline translation, so no doubled \r.
    assert "\r\r\n" not in text

    # stdin not a terminal (auto): no TTY is allocated.
    result = env.run("pipe")
    assert "not a tty" in result.stdout.decode()


def test_window_size_follows_sigwinch(dispatch_env: Make, box: str) -> None:
    env = dispatch_env({"version": "1", "commands": {"sizes": {"container": box, "exec": [
        # The resize travels as its own request beside the stream: the remote waits up to
        # 10 s for its size to change rather than the test guessing how long that takes.
        "sh", "-c", "sleep 0.3; stty size; echo READY; read x; i=0; "
        "while [ \"$(stty size)\" = '20 70' ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); "
        "done; stty size"], "tty": "always"}}})
    run = PtyRun([env.cmd("sizes")], env.env, rows=20, cols=70)
    assert run.read_until(b"READY"), run.text
    # Resizing the pty sends SIGWINCH to its foreground process group: the dispatcher.
    fcntl.ioctl(run.master, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 123, 0, 0))
    run.write(b"go\r")
    status = run.wait()
    text = run.text
    assert status == 0, text
    assert "20 70" in text
    assert "41 123" in text
