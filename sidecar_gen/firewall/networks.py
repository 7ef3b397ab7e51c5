"""Which networks count as the compose network, where the Docker host is, which ports it opens."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Sequence

from sidecar_gen.firewall import FirewallError

# What a bad variable's message says to do (`{variable}`: the variable's name).
NETWORKS_FIX = "set {variable} to `auto` or to CIDRs separated by commas"
PRIVATE_FIX = "set {variable} to CIDRs separated by commas, or leave it empty"
# Special-purpose ranges (IANA's registries; link-local has rules of its own): an allowed name
# that resolves into one of them (DNS rebinding) would otherwise open the Docker host's other
# addresses (docker0, the LAN address), the LAN, other containers or multicast. The compose
# networks (accepted before) and the declared private networks are exempt.
SPECIAL4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "172.16.0.0/12",
            "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
            "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")
SPECIAL6 = ("::/127", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32",
            "fc00::/7", "fec0::/10", "ff00::/8")
HOST_PORTS_FIX = ("list TCP port numbers (1-65535) under sidecar.firewall.host_ports in "
                  "bridge.yaml, then `sidecar render` and `sidecar up` on the host")
# The largest prefixes that still leave room for a gateway next to the containers.
_GATEWAY_PREFIX = {4: 30, 6: 126}


def parse_networks(spec: str, variable: str, fix: str = NETWORKS_FIX) -> list[str]:
    """The networks in `spec`, the value of `variable`: CIDRs separated by commas or spaces,
    normalized."""
    out: list[str] = []
    for item in re.split(r"[,\s]+", spec.strip()):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise FirewallError(variable, f"not a network: {item!r}",
                                fix.format(variable=variable)) from None
    return out


def attached_networks(ip_addr_json: str) -> list[str]:
    """Subnets of the container's global addresses, from `ip -j addr show` output."""
    try:
        links = json.loads(ip_addr_json or "[]")
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


def route_gateways(route4: str, route6: str = "") -> list[str]:
    """The default routes' gateways, from /proc/net/route and /proc/net/ipv6_route.

    Read from /proc rather than `ip route`: two processes fewer at every container start.
    """
    out: list[str] = []
    for line in route4.splitlines()[1:]:
        fields = line.split()
        # Iface Destination Gateway Flags ... Mask: little-endian hex, default = 0/0 via gw.
        if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
            with contextlib.suppress(ValueError):
                gateway = ipaddress.IPv4Address(int(fields[2], 16).to_bytes(4, "little"))
                if int(gateway) and str(gateway) not in out:
                    out.append(str(gateway))
    for line in route6.splitlines():
        fields = line.split()
        # dest plen src plen next-hop metric refcnt use flags iface: big-endian hex.
        if len(fields) >= 10 and fields[1] == "00" and not int(fields[0] or "1", 16):
            with contextlib.suppress(ValueError):
                hop = ipaddress.IPv6Address(bytes.fromhex(fields[4]))
                if int(hop) and str(hop) not in out:
                    out.append(str(hop))
    return out


def gateways(networks: Sequence[str], routed: Sequence[str] = ()) -> list[str]:
    """The Docker host's addresses on the compose networks.

    The default routes' gateways, plus each network's first address: Docker gives it to the
    host (the bridge) unless the network's `ipam` config names another gateway. Link-local
    gateways are left out: the rules close fe80::/10 anyway.
    """
    out = [g for g in routed if not ipaddress.ip_address(g).is_link_local]
    for text in networks:
        net = ipaddress.ip_network(text)
        if net.prefixlen > _GATEWAY_PREFIX[net.version]:
            continue
        first = str(net.network_address + 1)
        if first not in out:
            out.append(first)
    return out


def parse_host_ports(spec: str, variable: str) -> list[int]:
    """The TCP ports in `spec`, the value of `variable`: separated by commas or spaces,
    sorted."""
    ports: set[int] = set()
    for item in re.split(r"[,\s]+", spec.strip()):
        if not item:
            continue
        if not item.isdigit() or not 1 <= int(item) <= 65535:
            raise FirewallError(variable, f"not a TCP port: {item!r}", HOST_PORTS_FIX)
        ports.add(int(item))
    return sorted(ports)


def split_families(addresses: Sequence[str]) -> tuple[list[str], list[str]]:
    """(IPv4 ones, IPv6 ones) of networks or addresses."""
    v4 = [a for a in addresses if ipaddress.ip_network(a, strict=False).version == 4]
    v6 = [a for a in addresses if ipaddress.ip_network(a, strict=False).version == 6]
    return v4, v6
