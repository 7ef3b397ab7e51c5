"""The dispatcher's hot path: what a routed command imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


FORBIDDEN = {"json", "re", "http", "email", "subprocess", "socket", "logging", "typing",
             "collections", "enum", "urllib", "shlex", "signal", "sidecar_gen.errors"}


def test_hot_path_imports_only_stdlib_and_nothing_heavy() -> None:
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "import sidecar_gen.runtime.dispatch, sidecar_gen.runtime.cache\n"
        "import sidecar_gen.runtime.httpclient, sidecar_gen.runtime.frames\n"
        "import sidecar_gen.runtime.pathmap, sidecar_gen.runtime.contract\n"
        "import sidecar_gen.runtime.transport, sidecar_gen.runtime.jsonlite\n"
        "import sidecar_gen.runtime.killer, sidecar_gen.runtime.userspec\n"
        "import sidecar_gen.runtime.engine, sidecar_gen.runtime.terminal\n"
        "import sidecar_gen.runtime.plan, sidecar_gen.runtime.diagnose\n"
        "import sidecar_gen.runtime.native, sidecar_gen.runtime.audit\n"
        "for name, mod in sorted(sys.modules.items()):\n"
        "    print(name, getattr(mod, '__file__', None) or 'builtin')\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                         text=True, check=True).stdout
    modules = dict(line.split(" ", 1) for line in out.splitlines())
    top = {name.split(".")[0] for name in modules}
    assert not (FORBIDDEN & (top | set(modules))), sorted(FORBIDDEN & (top | set(modules)))
    stdlib = os.path.dirname(os.__file__)
    for name, where in modules.items():
        if name.startswith("sidecar_gen"):
            assert name in ("sidecar_gen", "sidecar_gen.runtime") or name.startswith(
                "sidecar_gen.runtime."), name
            continue
        assert where in ("builtin", "frozen", "None") or where.startswith(
            (stdlib, sys.base_prefix)), (name, where)


def test_tcp_connect_by_name_imports_nothing_heavy() -> None:
    """Resolving `tcp://localhost:PORT` must not pull the idna codec (re, unicodedata)."""
    script = (
        "import sys, _socket\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from sidecar_gen.runtime import transport\n"
        "srv = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
        "srv.bind(('127.0.0.1', 0)); srv.listen(1)\n"
        "port = srv.getsockname()[1]\n"
        "sock = transport.connect(transport.parse_host(f'tcp://localhost:{port}'), 5)\n"
        "sock.close(); srv.close()\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True,
                         text=True, check=True).stdout.split()
    heavy = {"re", "unicodedata", "encodings.idna", "stringprep", "enum"} & set(out)
    assert not heavy, sorted(heavy)
