"""The local images the Docker tests use: their names, in one place, and how to make them.

No registry is needed. `sidecar-test/busybox` (stand-in app containers) is a root file system
around the host's static busybox; `sidecar-test/debian` (the Claude image's base) is a
debootstrap'ed Debian bookworm (needs root and the Debian mirror). The Claude test images are
built from the Dockerfile by tests/image/build.py, tagged `sidecar-test/claude:<variant>-<hash>`.

Either base can be replaced with an image that has the same content (e.g. on a machine with a
registry): SIDECAR_TEST_IMAGE for busybox, SIDECAR_TEST_BASE_IMAGE for Debian.

Run as a script (`scripts/test-images`, called by `scripts/test` and `.ci/engine.sh`) it builds
the missing ones, installing busybox-static and debootstrap first when it runs as root on
Debian. It exits 0 when both exist, else 1 with one line saying why.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BUSYBOX_IMAGE = os.environ.get("SIDECAR_TEST_IMAGE", "sidecar-test/busybox:latest")
DEBIAN_IMAGE = os.environ.get("SIDECAR_TEST_BASE_IMAGE", "sidecar-test/debian:bookworm")
CLAUDE_REPO = "sidecar-test/claude"
SUITE = "bookworm"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

BUSYBOX_DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "var", "var/www",
                "var/www/html", "app", "work")
BUSYBOX_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
                  "app:x:1000:1000:app:/app:/bin/sh\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n",
}
PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageBuildError(Exception):
    """An image is missing and this machine cannot make it (the message says what is needed)."""


def log(message: str) -> None:
    """One progress line on stderr, like .ci/engine.sh's."""
    print(f"[images] {message}", file=sys.stderr, flush=True)


def image_exists(name: str) -> bool:
    """Whether the engine has an image called `name`."""
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def _import(name: str, tar: bytes | Path, cmd: str) -> None:
    """`docker import` a root file system tarball (bytes, or a folder to tar up) as `name`."""
    argv = ["docker", "import", "-c", f'CMD ["{cmd}"]', "-c", PATH_ENV, "-", name]
    if isinstance(tar, bytes):
        result = subprocess.run(argv, input=tar, capture_output=True)
    else:
        packer = subprocess.Popen(["tar", "-C", str(tar), "-c", "."], stdout=subprocess.PIPE)
        result = subprocess.run(argv, stdin=packer.stdout, capture_output=True)
        packer.wait()
    if result.returncode != 0:
        raise ImageBuildError(f"docker import {name} failed: {result.stderr.decode().strip()}")


def _is_static_elf(path: Path) -> bool:
    """An ELF executable without a program interpreter (so it needs no libc in the image)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only: the test machines are
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    pt_interp = 3
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != pt_interp
               for i in range(phnum))


def find_static_busybox() -> Path | None:
    """The host's busybox, when it is the static build (Debian's busybox-static)."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and _is_static_elf(path):
            return path
    return None


def busybox_rootfs(busybox: Path) -> bytes:
    """A tarball: busybox, a symlink per applet, a few folders and users; all owned by root."""
    applets = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.linkname = kind, mode, len(data), link
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("tmp", tarfile.DIRTYPE, 0o1777)
        for folder in BUSYBOX_DIRS:
            add(folder, tarfile.DIRTYPE, 0o755)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in applets:
            if applet != "bin/busybox":
                add(applet, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        for name, text in BUSYBOX_FILES.items():
            add(name, tarfile.REGTYPE, 0o644, text.encode())
    return buf.getvalue()


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    log(f"installing {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], env=env, capture_output=True)


def build_busybox(name: str) -> None:
    """Make the busybox image from the host's static busybox (package busybox-static)."""
    busybox = find_static_busybox()
    if busybox is None:
        _apt_install("busybox-static")
        busybox = find_static_busybox()
    if busybox is None:
        raise ImageBuildError(f"{name} is missing and needs a static busybox on this machine "
                          "(Debian: apt-get install busybox-static)")
    log(f"building {name} from {busybox}")
    _import(name, busybox_rootfs(busybox), "sh")


def debian_mirror() -> str:
    """The first Debian mirror the host's apt uses (one-line or deb822 sources; security and
    other distributions' archives excluded), else deb.debian.org."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if path.suffix not in {"", ".list", ".sources"} or not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split()
            if not words or words[0] not in {"deb", "URIs:"}:
                continue
            for url in words[1:]:
                if (url.startswith(("http:", "https:", "file:")) and "debian" in url
                        and "security" not in url):
                    return url
    return "http://deb.debian.org/debian"


def build_debian(name: str) -> None:
    """Make the Debian base with debootstrap (root only: it installs packages into a chroot)."""
    if os.geteuid() != 0:
        raise ImageBuildError(f"{name} is missing and only root can make it (debootstrap): "
                          "run `sudo scripts/test-images` once")
    if not shutil.which("debootstrap") or not KEYRING.exists():
        # The keyring: on another distribution (Ubuntu) debootstrap cannot check Debian's
        # signatures without it.
        _apt_install("debootstrap", "debian-archive-keyring")
    if not shutil.which("debootstrap"):
        raise ImageBuildError(f"{name} is missing and needs debootstrap "
                          "(Debian: apt-get install debootstrap)")
    mirror = debian_mirror()
    log(f"building {name} with debootstrap from {mirror} (a few minutes)")
    logfile = Path("/var/log/debootstrap-sidecar.log")
    with tempfile.TemporaryDirectory(prefix="sidecar-debian-") as root, logfile.open("w") as out:
        keyring = [f"--keyring={KEYRING}"] if KEYRING.exists() else []
        result = subprocess.run(["debootstrap", "--variant=minbase", *keyring, SUITE, root,
                                 mirror], stdout=out, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise ImageBuildError(f"debootstrap failed; see {logfile}")
        # Smaller and deterministic: no package lists or caches in the base.
        for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin",
                        "var/cache/apt/archives/*.deb"):
            for path in Path(root).glob(pattern):
                if path.is_file():
                    path.unlink()
        _import(name, Path(root), "bash")


def ensure_local_images() -> None:
    """Build whichever of the two base images is missing; raise ImageBuildError when impossible."""
    if not shutil.which("docker"):
        raise ImageBuildError("the docker command is not installed")
    if subprocess.run(["docker", "version"], capture_output=True).returncode != 0:
        raise ImageBuildError("no Docker engine is reachable (docker version failed)")
    for name, build in ((BUSYBOX_IMAGE, build_busybox), (DEBIAN_IMAGE, build_debian)):
        if not image_exists(name):
            build(name)


def main() -> int:
    """Entry point of `scripts/test-images`."""
    try:
        ensure_local_images()
    except ImageBuildError as exc:
        print(f"test images: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
