"""Benchmark the egress firewall's start-up and REJECT latency, offline, on a real engine.

    .venv/bin/python bench/firewall.py [--runs 15] [--domains 50]

In one Claude container (the test image), alternately, run by run:
- ours: `sidecar firewall up` with DOMAINS allowed domains (batched ipset/iptables-restore,
  dnsmasq started; names are resolved lazily, when used);
- the original's approach, as in Anthropic's reference devcontainer `init-firewall.sh`: resolve
  every domain once at start (one lookup process per domain, `getent` standing in for `dig`),
  one `ipset add` per address, one `iptables` process per rule.
Every domain resolves (network aliases of a local web server), so both do their full work.
Prints the medians and the ratio ours / original, then the REJECT latency: connect() to a
blocked address (refused), next to connect() to an allowed one, as the agent's user; then the
cost of one readiness probe (the healthcheck runs it every few seconds): the image's
`sidecar-health` (bash builtins) next to the obvious alternative, `sidecar firewall status`
(Python), alternately in the same container; then container start to ready, firewall on/off;
then the egress recorder's cost: an allowed connect (the DNS lookup, which the recorder logs,
plus connect()) through a recording forwarder against a second forwarder without the query
log, sample by sample alternately, with the recorder running; and the CPU time the recorder
and the forwarder spend on a flood of 10,000 refused names and 10,000 refused connections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

ORIGINAL = r"""
set -euo pipefail
iptables -F; iptables -X; iptables -P OUTPUT ACCEPT
ipset destroy allowed-domains 2>/dev/null || true
iptables -A OUTPUT -p udp --dport 53 -j ACCEPT
iptables -A INPUT -p udp --sport 53 -j ACCEPT
iptables -A INPUT -i lo -j ACCEPT
iptables -A OUTPUT -o lo -j ACCEPT
ipset create allowed-domains hash:net
while read -r domain; do
    ips=$(getent ahostsv4 "$domain" | awk '{print $1}' | sort -u)
    [ -n "$ips" ] || { echo "failed to resolve $domain" >&2; exit 1; }
    for ip in $ips; do ipset add allowed-domains "$ip" -exist; done
done < "$1"
net=$(ip route | awk '/default/ {print $3}' | sed 's/\.[0-9]*$/.0\/24/')
iptables -A INPUT -s "$net" -j ACCEPT
iptables -A OUTPUT -d "$net" -j ACCEPT
iptables -P INPUT DROP; iptables -P FORWARD DROP; iptables -P OUTPUT DROP
iptables -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
iptables -A OUTPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
iptables -A OUTPUT -m set --match-set allowed-domains dst -j ACCEPT
iptables -A OUTPUT -j REJECT --reject-with icmp-admin-prohibited
"""

DRIVER = r"""
import json, os, subprocess, sys, time
runs, domains_file = int(sys.argv[1]), sys.argv[2]
# The offline internet lives in private ranges: declare them, as a private mirror would be.
env = {**os.environ, "SIDECAR_FIREWALL_NETWORKS": sys.argv[3],
       "SIDECAR_FIREWALL_PRIVATE_NETWORKS": sys.argv[4]}
ours, original = [], []
def timed(argv):
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{argv} failed: {done.stdout} {done.stderr}")
    return elapsed
for _ in range(runs):
    original.append(timed(["bash", "/tmp/original.sh", domains_file]))
    ours.append(timed(["sidecar", "firewall", "up", "--domains", domains_file]))
print(json.dumps({"ours": ours, "original": original}))
"""

CONNECT = r"""
import json, socket, sys, time
def once(host):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(5)
    start = time.perf_counter()
    try:
        s.connect((host, 80))
        ok = True
    except OSError:
        ok = False
    elapsed = time.perf_counter() - start
    s.close()
    return elapsed, ok
out = {}
# The allowed name must be looked up first: that lookup is what allows its address.
allowed = socket.getaddrinfo(sys.argv[3], 80, socket.AF_INET)[0][4][0]
for key, host in zip(("blocked4", "blocked6", "allowed4"), (*sys.argv[1:3], allowed)):
    samples = [once(host) for _ in range(int(sys.argv[4]))]
    out[key] = {"times": [t for t, _ in samples], "connected": sum(ok for _, ok in samples)}
print(json.dumps(out))
"""


# The readiness probe against its obvious alternative. The marker is written the way the
# entrypoint does (the bench container runs without it), so both answer "healthy".
PROBES = r"""
import json, subprocess, sys, time
subprocess.run(["/usr/local/sbin/sidecar-health", "--mark", "enforcing", "bench"], check=True)
out = {"health": [], "status": []}
for _ in range(int(sys.argv[1])):
    for key, argv in (("health", ["/usr/local/sbin/sidecar-health"]),
                      ("status", ["sidecar", "firewall", "status"])):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True)
        out[key].append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{argv}: {done.stdout} {done.stderr}")
print(json.dumps(out))
"""


# Run as root in the bench container after `firewall up`: a second forwarder without the query
# log on 127.0.0.2, the recorder started, then allowed connects alternately through each.
RECORDING = r"""
import json, os, re, socket, struct, subprocess, sys, time
name, samples = sys.argv[1], int(sys.argv[2])
conf = open("/run/sidecar/firewall/dnsmasq.conf").read()
conf = re.sub(r"(?m)^(log-queries|log-async).*\n", "", conf)
conf = conf.replace("listen-address=127.0.0.1", "listen-address=127.0.0.2")
conf = re.sub(r"(?m)^pid-file=.*$", "pid-file=/tmp/b/plain.pid", conf)
conf = re.sub(r"(?m)^log-facility=.*$", "log-facility=/tmp/b/plain.log", conf)
open("/tmp/b/plain.conf", "w").write(conf)
subprocess.run(["dnsmasq", "--conf-file=/tmp/b/plain.conf"], check=True)
recorder = subprocess.Popen(["sidecar", "firewall", "record"])
time.sleep(1)
def lookup(server, qname, qtype=1):
    packet = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    for label in qname.split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(packet, (server, 53))
    data = s.recv(512)
    s.close()
    return data
def allowed_connect(server):
    start = time.perf_counter()
    data = lookup(server, name)
    address = socket.inet_ntoa(data[-4:])  # the last answer's A record
    c = socket.create_connection((address, 80), timeout=5)
    elapsed = time.perf_counter() - start
    c.close()
    return elapsed
out = {"recording": [], "plain": []}
for _ in range(samples):
    out["recording"].append(allowed_connect("127.0.0.1"))
    out["plain"].append(allowed_connect("127.0.0.2"))
def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rpartition(") ")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
forwarder = int(open("/run/sidecar/firewall/dnsmasq.pid").read())
before = (cpu(recorder.pid), cpu(forwarder), time.process_time())
for n in range(10000):
    try:
        lookup("127.0.0.1", f"n{n}.flood.example", 16)
    except OSError:
        pass
time.sleep(2)
after = (cpu(recorder.pid), cpu(forwarder), time.process_time())
out["dns_flood"] = [b - a for a, b in zip(before, after)]
before = (cpu(recorder.pid), time.process_time())
for n in range(10000):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((sys.argv[3], 1 + n % 5000))
    except OSError:
        pass
    s.close()
time.sleep(2)
after = (cpu(recorder.pid), time.process_time())
out["connect_flood"] = [b - a for a, b in zip(before, after)]
out["record_bytes"] = os.path.getsize("/run/sidecar/egress/record.jsonl")
recorder.kill()
print(json.dumps(out))
"""


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def start_to_ready(client: Any, image: str, network: str, work: Path, *, mode: str,
                   tag: str) -> float:
    """Seconds from `docker start` until the entrypoint logs that it is ready."""
    container = client.containers.create(
        image, None, name=f"sidecar-bench-start-{tag}-{uuid.uuid4().hex[:6]}",
        cap_add=["NET_ADMIN", "NET_RAW"], network=network,
        environment={"SIDECAR_FIREWALL": "1" if mode == "on" else "0",
                     "SIDECAR_FIREWALL_GITHUB": "0"},
        volumes={str(work): {"bind": "/run/sidecar/policy", "mode": "ro"}})
    try:
        begin = time.perf_counter()
        container.start()
        for line in container.logs(stream=True, follow=True):
            if b"ready (uid" in line:
                return time.perf_counter() - begin
        raise SystemExit(f"container never got ready: {container.logs().decode()}")
    finally:
        container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--domains", type=int, default=50)
    args = parser.parse_args()

    import docker
    from firewall.conftest import _create_inet  # the test suite's offline internet
    from image.build import ensure_claude_image
    from images import BUSYBOX_IMAGE

    client = docker.from_env(timeout=120)
    image = ensure_claude_image()
    tag = uuid.uuid4().hex[:8]
    inet, v4net, v6net = _create_inet(client)
    proj = client.networks.create(f"sidecar-bench-proj-{tag}")
    containers = []
    try:
        names = [f"d{i:02d}.bench.test" for i in range(1, args.domains + 1)]
        web = client.containers.create(BUSYBOX_IMAGE,
                                       ["httpd", "-f", "-p", "80", "-h", "/"],
                                       name=f"sidecar-bench-web-{tag}")
        blocked = client.containers.create(BUSYBOX_IMAGE,
                                           ["httpd", "-f", "-p", "80", "-h", "/"],
                                           name=f"sidecar-bench-blocked-{tag}")
        containers += [web, blocked]
        inet.connect(web, aliases=names, ipv4_address=str(v4net[10]),
                     ipv6_address=str(v6net[10]))
        inet.connect(blocked, ipv4_address=str(v4net[11]), ipv6_address=str(v6net[11]))
        for container in (web, blocked):
            client.networks.get("bridge").disconnect(container)
            container.start()
        claude = client.containers.create(
            image, ["sleep", "infinity"], entrypoint=[], user="root",
            name=f"sidecar-bench-claude-{tag}", cap_add=["NET_ADMIN", "NET_RAW"],
            network=proj.name)
        containers.append(claude)
        inet.connect(claude)
        claude.start()
        proj.reload()
        subnet = proj.attrs["IPAM"]["Config"][0]["Subnet"]
        setup = ("mkdir -p /tmp/b && printf '%s\\n' " + " ".join(names) + " >/tmp/b/domains.txt"
                 " && cat >/tmp/original.sh <<'EOF'\n" + ORIGINAL + "EOF\n")
        assert claude.exec_run(["bash", "-c", setup]).exit_code == 0
        result = claude.exec_run(["python3", "-c", DRIVER, str(args.runs), "/tmp/b/domains.txt",
                                  subnet, f"{v4net},{v6net}"])
        if result.exit_code != 0:
            sys.exit(result.output.decode())
        times = json.loads(result.output)
        ours, original = median(times["ours"]), median(times["original"])
        print(f"firewall start-up, {args.domains} domains, median of {args.runs} alternating runs:")
        print(f"  ours (sidecar firewall up, whole command): {ours * 1000:7.1f} ms")
        print(f"  original (resolve all at start, 1 process per address/rule): "
              f"{original * 1000:7.1f} ms")
        print(f"  ratio ours/original: {ours / original:.2f}")
        # Leave our firewall in place for the REJECT measurement, as the agent's user.
        samples = 50
        result = claude.exec_run(["python3", "-c", CONNECT, str(v4net[11]), str(v6net[11]),
                                  names[0], str(samples)], user="claude")
        data = json.loads(result.output)
        print(f"connect() latency, median of {samples}, as the agent's user:")
        for key, label in (("blocked4", "blocked IPv4 (REJECT)"),
                           ("blocked6", "blocked IPv6 (REJECT)"),
                           ("allowed4", "allowed IPv4 (after one lookup)")):
            print(f"  {label:32} {median(data[key]['times']) * 1000:8.3f} ms "
                  f"({data[key]['connected']}/{samples} connected)")
        result = claude.exec_run(["python3", "-c", PROBES, str(args.runs * 2)])
        if result.exit_code != 0:
            sys.exit(result.output.decode())
        probes = json.loads(result.output)
        health, python = median(probes["health"]), median(probes["status"])
        print(f"one readiness probe, median of {args.runs * 2} alternating runs, in-container:")
        print(f"  sidecar-health (bash):            {health * 1000:7.1f} ms")
        print(f"  sidecar firewall status (Python): {python * 1000:7.1f} ms")
        print(f"  ratio health/status: {health / python:.2f}")
        samples = max(args.runs * 20, 200)
        result = claude.exec_run(["python3", "-c", RECORDING, names[0], str(samples),
                                  str(v4net[11])])
        if result.exit_code != 0:
            sys.exit(result.output.decode())
        rec = json.loads(result.output.decode().strip().splitlines()[-1])
        recording, plain = median(rec["recording"]), median(rec["plain"])
        print(f"allowed connect (lookup + connect), median of {samples} alternating samples:")
        print(f"  forwarder logging queries, recorder running: {recording * 1000:7.3f} ms")
        print(f"  forwarder without the query log:             {plain * 1000:7.3f} ms")
        print(f"  ratio recording/plain: {recording / plain:.3f}")
        rec_cpu, fwd_cpu, agent_cpu = rec["dns_flood"]
        print(f"flood of 10,000 refused names: recorder {rec_cpu:.2f} s CPU, forwarder "
              f"{fwd_cpu:.2f} s, the flooding process itself {agent_cpu:.2f} s")
        rec_cpu, agent_cpu = rec["connect_flood"]
        print(f"flood of 10,000 refused connections: recorder {rec_cpu:.2f} s CPU, the flooding "
              f"process itself {agent_cpu:.2f} s; record size after both floods: "
              f"{rec['record_bytes'] / 1024:.1f} KiB")
        print(f"container start to entrypoint ready, median of {args.runs} alternating runs:")
        work = Path(tempfile.mkdtemp(prefix="sidecar-bench-"))
        (work / "allowed-domains.txt").write_text("\n".join(names) + "\n")
        starts: dict[str, list[float]] = {"on": [], "off": []}
        for _ in range(args.runs):
            for mode in ("on", "off"):
                took = start_to_ready(client, image, proj.name, work, mode=mode, tag=tag)
                starts[mode].append(took)
        on, off = median(starts["on"]), median(starts["off"])
        print(f"  firewall on ({args.domains} domains): {on * 1000:7.1f} ms")
        print(f"  firewall off:                {off * 1000:7.1f} ms")
        print(f"  ratio on/off: {on / off:.2f}")
        shutil.rmtree(work, ignore_errors=True)
    finally:
        for container in containers:
            with contextlib.suppress(Exception):
                container.remove(force=True)
        for network in (inet, proj):
            with contextlib.suppress(Exception):
                network.remove()


if __name__ == "__main__":
    main()
