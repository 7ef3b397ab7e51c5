"""The Claude container's egress firewall: allowed-domains.txt -> forwarder config and rulesets.

Design (README, "Network firewall"): dnsmasq is the container's only resolver; it forwards only
allowed names (and their subdomains) to Docker's embedded DNS, answers everything else NXDOMAIN,
and adds every address it hands out to an ipset (IPv4 and IPv6). iptables and ip6tables accept
loopback, established flows, the directly attached (compose) networks and the ipset members, and
REJECT everything else. Set-up is batched (`ipset restore`, `iptables-restore`,
`ip6tables-restore`) and fails closed: when any step fails, a lockdown ruleset without the
ipsets (compose networks only) replaces it.

Everything is read once at container start by root; the generated files live in a root-owned
directory, so nothing the agent can write is read as firewall configuration afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sidecar_gen import templating
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.fsutil import write_atomic

CHAIN = "SIDECAR-EGRESS"
SET4 = "sidecar-allow4"
SET6 = "sidecar-allow6"
GITHUB4 = "sidecar-github4"
GITHUB6 = "sidecar-github6"
DNS_USER = "sidecar-dns"
EMBEDDED_DNS = "127.0.0.11"
STATE_DIR = Path("/run/sidecar/firewall")
RESOLV_CONF = Path("/etc/resolv.conf")
# GitHub names always go through the forwarder; its published ranges are added when reachable.
GITHUB_DOMAINS = ("github.com", "githubusercontent.com")
GITHUB_META = "https://api.github.com/meta"
MAX_DOMAINS = 2000

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class FirewallError(SidecarError):
    """A firewall step failed; the firewall then fails closed."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}", exit_code=ExitCode.FINDINGS)
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class DomainProblem:
    """One bad line of allowed-domains.txt."""

    line: int
    text: str
    message: str


def check_domain(name: str) -> str | None:
    """Why `name` is not an acceptable allowed domain (None when it is)."""
    if "://" in name or "/" in name:
        return "write a bare domain name, not a URL"
    if name.startswith("*."):
        return "write the domain without '*.': subdomains are always included"
    if ":" in name and not _is_ip(name):
        return "no ports: a domain is allowed on every port"
    if _is_ip(name):
        return "an IP address: list domain names (their addresses are allowed as resolved)"
    if len(name) > 253:
        return "longer than 253 characters"
    labels = name.split(".")
    if len(labels) < 2:
        return "a single label would allow a whole top-level domain"
    for label in labels:
        if not _LABEL.match(label):
            return f"invalid label {label!r} (letters, digits and '-', 1 to 63 characters)"
    if labels[-1].isdigit():
        return "the last label cannot be a number"
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def parse_domains(text: str) -> tuple[list[str], list[DomainProblem]]:
    """Parse allowed-domains.txt strictly: (domains in order, without duplicates; problems).

    One domain per line; `#` starts a comment; blank lines are ignored; names are lowercased.
    Every bad line is reported, not only the first.
    """
    domains: list[str] = []
    problems: list[DomainProblem] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(line.split()) > 1:
            problems.append(DomainProblem(number, line, "one domain per line"))
            continue
        name = line.lower().rstrip(".") if line.endswith(".") and line != "." else line.lower()
        reason = check_domain(name)
        if reason:
            problems.append(DomainProblem(number, line, reason))
        elif name not in seen:
            seen.add(name)
            domains.append(name)
    if len(domains) > MAX_DOMAINS:
        problems.append(DomainProblem(0, "", f"more than {MAX_DOMAINS} domains"))
    return domains, problems


def load_domains(path: Path) -> list[str]:
    """Read and strictly parse allowed-domains.txt; any problem raises FirewallError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FirewallError(str(path), exc.strerror or "cannot read") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FirewallError(str(path), "not UTF-8 text") from None
    domains, problems = parse_domains(text)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise FirewallError(f"{path}:{first.line}", f"{first.text!r}: {first.message}{more}")
    return domains


def with_github(domains: Sequence[str]) -> list[str]:
    """The forwarder's allowed names: the file's, then GitHub's (once)."""
    out = list(domains)
    for name in GITHUB_DOMAINS:
        if not any(name == d or name.endswith("." + d) for d in out):
            out.append(name)
    return out


# -- networks ---------------------------------------------------------------------------------


def parse_networks(spec: str) -> list[str]:
    """`SIDECAR_FIREWALL_NETWORKS`: CIDRs separated by commas or spaces, normalized."""
    out: list[str] = []
    for item in re.split(r"[,\s]+", spec.strip()):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise FirewallError("SIDECAR_FIREWALL_NETWORKS", f"not a network: {item!r}") from None
    return out


def attached_networks(ip_addr_json: str) -> list[str]:
    """Subnets of the container's global addresses, from `ip -j addr show` output."""
    try:
        links = json.loads(ip_addr_json)
    except ValueError:
        raise FirewallError("ip -j addr", "unreadable output") from None
    out: list[str] = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or link.get("ifname") == "lo":
            continue
        for info in link.get("addr_info") or []:
            if not isinstance(info, dict) or info.get("scope") != "global":
                continue
            try:
                net = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}").network
            except (KeyError, ValueError):
                continue
            if str(net) not in out:
                out.append(str(net))
    return out


def split_families(networks: Sequence[str]) -> tuple[list[str], list[str]]:
    """(IPv4 networks, IPv6 networks)."""
    v4 = [n for n in networks if ipaddress.ip_network(n).version == 4]
    v6 = [n for n in networks if ipaddress.ip_network(n).version == 6]
    return v4, v6


# -- texts ------------------------------------------------------------------------------------


def ruleset(family: int, mode: str, networks: Sequence[str], dns_uid: int) -> str:
    """The iptables-restore (family 4) or ip6tables-restore (6) text; mode enforce|lockdown."""
    template = "firewall/rules.v4.j2" if family == 4 else "firewall/rules.v6.j2"
    return templating.render(template, mode=mode, networks=list(networks), dns_uid=dns_uid,
                             chain=CHAIN, set4=SET4, set6=SET6, github4=GITHUB4,
                             github6=GITHUB6)


def ipset_script() -> str:
    """The `ipset restore` text creating (or emptying) the four sets."""
    return templating.render("firewall/ipsets.j2", set4=SET4, set6=SET6, github4=GITHUB4,
                             github6=GITHUB6)


def dnsmasq_config(domains: Sequence[str], state_dir: Path = STATE_DIR, user: str = DNS_USER,
                   group: str = "nogroup", upstreams: Sequence[str] = (EMBEDDED_DNS,)) -> str:
    """The forwarder's configuration for the allowed domains."""
    return templating.render("firewall/dnsmasq.conf.j2", domains=list(domains), user=user,
                             group=group, upstreams=list(upstreams),
                             pid_file=str(state_dir / "dnsmasq.pid"),
                             log_file=str(state_dir / "dnsmasq.log"), set4=SET4, set6=SET6)


RESOLV_MARK = "# claude-sidecar: the egress firewall's DNS forwarder"


def resolv_conf(current: str) -> str:
    """Docker's resolv.conf with the forwarder as the only nameserver (search/options kept)."""
    kept = [line for line in current.splitlines()
            if line.split()[:1] and line.split()[0] in ("search", "options")]
    return "\n".join([RESOLV_MARK, "nameserver 127.0.0.1", *kept]) + "\n"


def nameservers(resolv: str) -> list[str]:
    """The forwarder's upstreams: the nameservers Docker wrote (127.0.0.11 on compose networks).

    Scoped IPv6 addresses and our own forwarder are skipped; none left means Docker's DNS.
    """
    out: list[str] = []
    for line in resolv.splitlines():
        words = line.split()
        if (len(words) >= 2 and words[0] == "nameserver" and "%" not in words[1]
                and _is_ip(words[1]) and words[1] not in ("127.0.0.1", "::1", *out)):
            out.append(words[1])
    return out or [EMBEDDED_DNS]


def github_ranges(meta: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """GitHub's web, API and git ranges from api.github.com/meta, split by family."""
    nets: list[str] = []
    for key in ("web", "api", "git"):
        for item in meta.get(key) or []:
            try:
                net = str(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                continue
            if net not in nets:
                nets.append(net)
    return split_families(nets)


# -- running ----------------------------------------------------------------------------------


@dataclass
class UpResult:
    """What `firewall up` did."""

    mode: str  # enforce | lockdown
    reason: str
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    ipv6: bool = True
    seconds: float = 0.0


def _run(step: str, argv: list[str], stdin: str | None = None) -> str:
    exe = shutil.which(argv[0], path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if exe is None:
        raise FirewallError(step, f"{argv[0]} is not installed")
    try:
        done = subprocess.run([exe, *argv[1:]], input=stdin, capture_output=True, text=True,
                              timeout=20, check=False)
    except OSError as exc:
        raise FirewallError(step, f"cannot run {argv[0]}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise FirewallError(step, f"{argv[0]} did not finish in 20 s") from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:300] or f"exit {done.returncode}"
        raise FirewallError(step, detail)
    return done.stdout


def _ipv6_available() -> bool:
    return Path("/proc/net/if_inet6").exists()


def _dns_ids() -> tuple[int, str]:
    try:
        entry = pwd.getpwnam(DNS_USER)
    except KeyError:
        raise FirewallError("forwarder", f"user {DNS_USER} does not exist") from None
    import grp

    return entry.pw_uid, grp.getgrgid(entry.pw_gid).gr_name


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    write_atomic(path, text, mode=0o644)


def _stop_forwarder(state_dir: Path) -> None:
    pid = _forwarder_pid(state_dir)
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, 15)


def _forwarder_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / "dnsmasq.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm == "dnsmasq" else None


def _enforce(domains: list[str], networks: list[str], ipv6: bool, state_dir: Path) -> None:
    dns_uid, dns_group = _dns_ids()
    v4, v6 = split_families(networks)
    _run("ipset", ["ipset", "restore"], ipset_script())
    _run("iptables", ["iptables-restore"], ruleset(4, "enforce", v4, dns_uid))
    if ipv6:
        _run("ip6tables", ["ip6tables-restore"], ruleset(6, "enforce", v6, dns_uid))
    try:
        current = RESOLV_CONF.read_text(encoding="utf-8")
    except OSError as exc:
        raise FirewallError(str(RESOLV_CONF), exc.strerror or "cannot read") from None
    saved = state_dir / "resolv.conf.docker"
    if RESOLV_MARK in current and saved.exists():
        current = saved.read_text(encoding="utf-8")  # a restart that kept our rewritten file
    else:
        _write_private(saved, current)
    conf = state_dir / "dnsmasq.conf"
    _write_private(conf, dnsmasq_config(with_github(domains), state_dir, group=dns_group,
                                        upstreams=nameservers(current)))
    _stop_forwarder(state_dir)
    (state_dir / "dnsmasq.pid").unlink(missing_ok=True)
    _run("forwarder", ["dnsmasq", f"--conf-file={conf}"])
    if _forwarder_pid(state_dir) is None:
        raise FirewallError("forwarder", "dnsmasq exited right after starting")
    try:
        # Docker bind-mounts resolv.conf: rewrite it in place, a rename would fail.
        RESOLV_CONF.write_text(resolv_conf(current), encoding="utf-8")
    except OSError as exc:
        raise FirewallError(str(RESOLV_CONF), exc.strerror or "cannot write") from None


def _lockdown(networks: list[str], ipv6: bool) -> None:
    v4, v6 = split_families(networks)
    _run("lockdown", ["iptables-restore"], ruleset(4, "lockdown", v4, 0))
    if ipv6:
        _run("lockdown", ["ip6tables-restore"], ruleset(6, "lockdown", v6, 0))


def firewall_up(domains_file: Path, environ: Mapping[str, str] | None = None,
                state_dir: Path = STATE_DIR) -> UpResult:
    """Set the firewall up; on any failure fall back to the lockdown ruleset (fail closed).

    Returns mode `enforce` or `lockdown` (with the reason). Raises SidecarError (exit 3) only
    when even the lockdown ruleset cannot be loaded: the caller must then cut egress another way.
    """
    env = os.environ if environ is None else environ
    start = time.monotonic()
    ipv6 = _ipv6_available()
    result = UpResult(mode="enforce", reason="", ipv6=ipv6)
    networks: list[str] = []
    try:
        spec = env.get("SIDECAR_FIREWALL_NETWORKS", "auto").strip() or "auto"
        if spec == "auto":
            networks = attached_networks(_run("networks", ["ip", "-j", "addr", "show"]))
        else:
            networks = parse_networks(spec)
        result.networks = networks
        result.domains = load_domains(domains_file)
        _enforce(result.domains, networks, ipv6, state_dir)
    except FirewallError as exc:
        result.mode = "lockdown"
        result.reason = exc.message
        _stop_forwarder(state_dir)
        try:
            _lockdown(networks, ipv6)
        except FirewallError as again:
            _save_state(state_dir, result, error=again.message)
            raise SidecarError(f"firewall failed ({exc.message}) and the lockdown rules could "
                               f"not be loaded ({again.message})",
                               exit_code=ExitCode.INTERNAL) from None
    result.seconds = time.monotonic() - start
    _save_state(state_dir, result)
    return result


def _save_state(state_dir: Path, result: UpResult, error: str = "") -> None:
    data = asdict(result)
    data["error"] = error
    data["started"] = time.time()
    # Without it status reports "unknown": never a reason to stop the container.
    with contextlib.suppress(OSError):
        _write_private(state_dir / "state.json", json.dumps(data, indent=1) + "\n")


def add_github_ranges(meta: Mapping[str, Any]) -> int:
    """Add GitHub's published ranges to the GitHub sets in one batch; return how many."""
    v4, v6 = github_ranges(meta)
    lines = [f"add {GITHUB4} {net} -exist" for net in v4]
    if _ipv6_available():
        lines += [f"add {GITHUB6} {net} -exist" for net in v6]
    if lines:
        _run("github", ["ipset", "restore"], "\n".join(lines) + "\n")
    return len(lines)


def fetch_github_meta(timeout: float = 5.0) -> dict[str, Any]:
    """GET api.github.com/meta (through the firewall: the forwarder allows GitHub's names)."""
    import urllib.request

    request = urllib.request.Request(GITHUB_META, headers={"User-Agent": "claude-sidecar"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https URL
            loaded = json.loads(response.read(4_000_000))
    except (OSError, ValueError) as exc:
        raise FirewallError("github", f"{GITHUB_META} not reachable: {exc}") from None
    if not isinstance(loaded, dict):
        raise FirewallError("github", "unexpected answer from the meta API")
    return loaded


# -- status -----------------------------------------------------------------------------------


@dataclass
class FirewallStatus:
    """`sidecar firewall status` as data."""

    state: str  # enforcing | lockdown | degraded | disabled | unknown
    detail: str
    forwarder_alive: bool = False
    rules_v4: bool | None = None  # None: not inspectable (needs root)
    rules_v6: bool | None = None
    set_sizes: dict[str, int] | None = None
    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when egress is filtered as configured (or deliberately disabled)."""
        return self.state in ("enforcing", "disabled")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "healthy": self.healthy}


def _rules_present(tool: str) -> bool | None:
    try:
        out = _run("status", [tool, "-S", "OUTPUT"])
    except FirewallError:
        return None if os.geteuid() != 0 else False
    return f"-A OUTPUT -j {CHAIN}" in out and "-P OUTPUT DROP" in out


def _set_sizes() -> dict[str, int] | None:
    sizes: dict[str, int] = {}
    for name in (SET4, SET6, GITHUB4, GITHUB6):
        try:
            out = _run("status", ["ipset", "list", "-t", name])
        except FirewallError:
            continue
        match = re.search(r"Number of entries:\s*(\d+)", out)
        if match:
            sizes[name] = int(match.group(1))
    return sizes or None


def firewall_status(environ: Mapping[str, str] | None = None,
                    state_dir: Path = STATE_DIR) -> FirewallStatus:
    """Inspect the firewall: rules, set sizes (as root), forwarder, allowed domains."""
    env = os.environ if environ is None else environ
    if env.get("SIDECAR_FIREWALL", "1").lower() in ("0", "false", "no", "off"):
        return FirewallStatus("disabled", "disabled by bridge.yaml (sidecar.firewall.enabled: "
                              "false): egress is not filtered")
    try:
        state = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = None
    if not isinstance(state, dict):
        return FirewallStatus("unknown", "the firewall was not set up in this container "
                              "(no state file)")
    status = FirewallStatus(
        state="enforcing",
        detail="",
        forwarder_alive=_forwarder_pid(state_dir) is not None,
        domains=[str(d) for d in state.get("domains") or []],
        networks=[str(n) for n in state.get("networks") or []],
    )
    if os.geteuid() == 0:
        status.rules_v4 = _rules_present("iptables")
        status.rules_v6 = _rules_present("ip6tables") if state.get("ipv6") else None
        status.set_sizes = _set_sizes()
    if state.get("error"):
        status.state = "failed"
        status.detail = f"lockdown rules could not be loaded: {state['error']}"
    elif state.get("mode") != "enforce":
        status.state = "lockdown"
        status.detail = (f"set-up failed ({state.get('reason')}): egress blocked except the "
                         "compose network")
    elif not status.forwarder_alive:
        status.state = "degraded"
        status.detail = ("the DNS forwarder is not running: no name resolves; egress is limited "
                         "to addresses resolved before it stopped")
    elif status.rules_v4 is False or status.rules_v6 is False:
        status.state = "degraded"
        status.detail = "the egress rules are missing"
    else:
        status.detail = (f"egress limited to {len(status.domains)} allowed domain(s), GitHub "
                         "and the compose network")
    return status
