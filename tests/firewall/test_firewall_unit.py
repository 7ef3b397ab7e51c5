"""The firewall's core as data: strict parsing, networks, rulesets, forwarder config, status."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from sidecar_gen import firewall
from sidecar_gen.firewall import FirewallError
from sidecar_gen.firewall.allowlist import load_domains, parse_domains, with_github
from sidecar_gen.firewall.github import github_ranges
from sidecar_gen.firewall.networks import (
    attached_networks,
    gateways,
    parse_host_ports,
    parse_networks,
    route_gateways,
)
from sidecar_gen.firewall.rulesets import (
    FamilyPlan,
    dnsmasq_config,
    nameservers,
    resolv_conf,
    ruleset,
)
from sidecar_gen.firewall.state import (
    OPTIONS,
    FirewallState,
    environment,
    load_state,
    read_option,
    save_state,
)
from sidecar_gen.firewall.status import firewall_status
from sidecar_gen.firewall.system import has_capability
from sidecar_gen.model import Firewall


def test_parse_domains_accepts_comments_blank_lines_and_case() -> None:
    text = ("# header\n\nAPI.Anthropic.com   # default: Claude API\n"
            "registry.npmjs.org\nexample.com.\napi.anthropic.com\n")
    domains, problems = parse_domains(text)
    assert problems == []
    assert domains == ["api.anthropic.com", "registry.npmjs.org", "example.com"]


def test_parse_domains_reads_the_file_init_writes() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "laravel" / ".sidecar"
    domains = load_domains(path / "allowed-domains.txt")
    # With the broker on (the default), Claude Code's own hosts are not in it.
    assert domains == ["repo.packagist.org", "packagist.org"]


@pytest.mark.parametrize(("line", "reason"), [
    ("https://example.com/x", "not a URL"),
    ("*.example.com", "subdomains are always included"),
    ("example.com:443", "no ports"),
    ("10.0.0.1", "an IP address"),
    ("2001:db8::1", "an IP address"),
    ("com", "single label"),
    ("exa_mple.com", "invalid label"),
    ("-bad.example.com", "invalid label"),
    ("a..b", "invalid label"),
    ("example.123", "cannot be a number"),
    ("two names.com", "one domain per line"),
    ("x" * 64 + ".com", "invalid label"),
    (("a" * 60 + ".") * 5 + "com", "longer than 253"),
])
def test_parse_domains_rejects(line: str, reason: str) -> None:
    domains, problems = parse_domains(f"ok.example\n{line}\n")
    assert domains == ["ok.example"]
    assert len(problems) == 1
    assert problems[0].line == 2
    assert reason in problems[0].message


def test_parse_domains_reports_every_problem() -> None:
    _, problems = parse_domains("*.a.com\nb.com\nhttp://c.com\n")
    assert [p.line for p in problems] == [1, 3]


def test_load_domains_fails_on_the_first_problem_with_a_count(tmp_path: Path) -> None:
    path = tmp_path / "allowed-domains.txt"
    path.write_text("good.com\n*.bad.com\nhttp://worse.com\n")
    with pytest.raises(FirewallError) as caught:
        load_domains(path)
    assert caught.value.message.startswith(f"{path}:2: '*.bad.com': ")
    assert "(and 1 more)" in caught.value.message


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no approved allowlist \\(No such file or directory\\)"),
    (b"good.com\n\xff\xfe\n", "not UTF-8 text"),
])
def test_load_domains_unreadable(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "allowed-domains.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FirewallError, match=reason) as caught:
        load_domains(path)
    assert "sidecar up" in caught.value.fix


def test_with_github_adds_github_once() -> None:
    assert with_github(["a.com"]) == ["a.com", "github.com", "githubusercontent.com"]
    assert with_github(["github.com", "githubusercontent.com"]) == [
        "github.com", "githubusercontent.com"]


def test_attached_networks_from_ip_json() -> None:
    sample = json.dumps([
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1",
                                        "prefixlen": 8, "scope": "host"}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "172.18.0.5", "prefixlen": 16, "scope": "global"},
            {"family": "inet6", "local": "fd00:1::5", "prefixlen": 64, "scope": "global"},
            {"family": "inet6", "local": "fe80::42:acff:fe12:5", "prefixlen": 64,
             "scope": "link"}]},
        {"ifname": "eth1", "addr_info": [
            {"family": "inet", "local": "10.1.2.3", "prefixlen": 24, "scope": "global"}]},
    ])
    assert attached_networks(sample) == ["172.18.0.0/16", "fd00:1::/64", "10.1.2.0/24"]


NETWORKS, HOST_PORTS = "SIDECAR_FIREWALL_NETWORKS", "SIDECAR_FIREWALL_HOST_PORTS"


def test_parse_networks() -> None:
    assert parse_networks("172.18.0.5/16, fd00::/64 10.0.0.0/8", NETWORKS) == [
        "172.18.0.0/16", "fd00::/64", "10.0.0.0/8"]
    with pytest.raises(FirewallError, match="not a network") as caught:
        parse_networks("172.18.0.0/16,nonsense", NETWORKS)
    assert caught.value.fix == f"set {NETWORKS} to `auto` or to CIDRs separated by commas"


def test_enforce_ruleset_v4() -> None:
    text = ruleset(4, "enforcing", FamilyPlan(["172.18.0.0/16"], ["172.18.0.1"], [5432]),
                   dns_uid=998)
    lines = text.splitlines()
    assert lines[-1] == "COMMIT"
    assert ":OUTPUT DROP [0:0]" in lines
    chain = firewall.CHAIN
    allow = firewall.ALLOW_CHAIN
    mark = firewall.CONNMARK
    # Order matters: Docker's DNS closed to everyone but the forwarder and root, DNS to any
    # other resolver rejected, the Docker host closed but for its listed ports, link-local
    # closed, all before the compose network and the allowed addresses are accepted (marked).
    expected = [
        f"-A {chain} -d 127.0.0.11/32 -m owner --uid-owner 998 -j ACCEPT",
        f"-A {chain} -d 127.0.0.11/32 -j REJECT --reject-with icmp-port-unreachable",
        f"-A {chain} -o lo -j ACCEPT",
        f"-A {chain} -m connmark --mark {mark} -j ACCEPT",
        f"-A {chain} -p udp --dport 53 -m owner --uid-owner 998 -j {allow}",
        f"-A {chain} -p udp --dport 53 -j REJECT --reject-with icmp-port-unreachable",
        f"-A {chain} -d 172.18.0.1/32 -p tcp --dport 5432 -j {allow}",
        f"-A {chain} -d 172.18.0.1/32 -p tcp -j REJECT --reject-with tcp-reset",
        f"-A {chain} -d 172.18.0.1/32 -j REJECT --reject-with icmp-port-unreachable",
        f"-A {chain} -d 169.254.0.0/16 -j REJECT --reject-with icmp-port-unreachable",
        f"-A {chain} -d 172.18.0.0/16 -j {allow}",
        f"-A {chain} -m set --match-set {firewall.SET4} dst -j {allow}",
        f"-A {chain} -p tcp -j REJECT --reject-with tcp-reset",
        f"-A {chain} -j REJECT --reject-with icmp-port-unreachable",
    ]
    positions = [lines.index(rule) for rule in expected]
    assert positions == sorted(positions)
    assert "*filter" in lines and "*nat" not in text  # Docker's DNS NAT rules stay
    # Nothing is accepted unmarked but loopback and the forwarder's own DNS: a flow opened
    # before the rules loaded has no mark and is cut.
    accepts = [line for line in lines if line.endswith("-j ACCEPT") and f"-A {chain} " in line]
    assert accepts == [f"-A {chain} -d 127.0.0.11/32 -m owner --uid-owner 998 -j ACCEPT",
                       f"-A {chain} -d 127.0.0.11/32 -m owner --uid-owner 0 -j ACCEPT",
                       # DNS answers on loopback: the forwarder's and root's only.
                       f"-A {chain} -o lo -p udp --sport 53 -m owner --uid-owner 998 -j ACCEPT",
                       f"-A {chain} -o lo -p tcp --sport 53 -m owner --uid-owner 998 -j ACCEPT",
                       f"-A {chain} -o lo -p udp --sport 53 -m owner --uid-owner 0 -j ACCEPT",
                       f"-A {chain} -o lo -p tcp --sport 53 -m owner --uid-owner 0 -j ACCEPT",
                       f"-A {chain} -o lo -j ACCEPT",
                       f"-A {chain} -m connmark --mark {mark} -j ACCEPT"]
    assert lines.index(f"-A {chain} -o lo -p udp --sport 53 -j REJECT --reject-with "
                       "icmp-port-unreachable") < lines.index(f"-A {chain} -o lo -j ACCEPT")
    assert "ESTABLISHED" not in "\n".join(line for line in lines if f"-A {chain} " in line)
    assert f"-A {allow} -j CONNMARK --set-mark {mark}" in lines
    # In: new flows only from the compose networks; everything else new, and unmarked older
    # flows, dropped.
    ingress = [line for line in lines if line.startswith(f"-A {firewall.INGRESS_CHAIN} ")]
    assert ingress[-2:] == [
        f"-A {firewall.INGRESS_CHAIN} -s 172.18.0.0/16 -m conntrack --ctstate NEW -j {allow}",
        f"-A {firewall.INGRESS_CHAIN} -m conntrack --ctstate NEW,ESTABLISHED,RELATED -j DROP"]
    assert [line for line in ingress if "NEW" in line and "-s " not in line] == [ingress[-1]]


@pytest.mark.parametrize("family", [4, 6])
def test_special_addresses_are_closed_before_the_sets(family: int) -> None:
    # A DNS answer for an allowed name never opens a special-purpose address (the Docker
    # host's other addresses, the LAN, multicast): the special chain comes after the compose
    # networks (so they stay open) and before the sets; declared private networks return early.
    net, exempt = ("172.18.0.0/16", "10.20.0.0/16") if family == 4 else ("fd00:1::/64",
                                                                         "fd00:2::/64")
    text = ruleset(family, "enforcing", FamilyPlan([net], [], [], [exempt]), dns_uid=998)
    lines = text.splitlines()
    chain, special = firewall.CHAIN, firewall.SPECIAL_CHAIN
    order = [f"-A {chain} -d {net} -j {firewall.ALLOW_CHAIN}", f"-A {chain} -j {special}",
             f"-A {chain} -m set --match-set {firewall.SET4 if family == 4 else firewall.SET6} "
             f"dst -j {firewall.ALLOW_CHAIN}"]
    positions = [lines.index(rule) for rule in order]
    assert positions == sorted(positions)
    rules = [line for line in lines if line.startswith(f"-A {special} ")
             and not line.endswith(f"-j {firewall.RECORD_CHAIN}")]
    assert rules[0] == f"-A {special} -d {exempt} -j RETURN"
    closed = {line.split()[3] for line in rules[1:]}
    assert all(line.endswith(("-j REJECT --reject-with tcp-reset", "-unreachable"))
               for line in rules[1:])
    if family == 4:
        assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8"} <= closed
    else:
        assert {"fc00::/7", "ff00::/8", "::ffff:0:0/96", "::/127"} <= closed
    # In lockdown too (no sets there, but the chain is harmless and the same).
    assert f"-A {chain} -j {special}" in ruleset(family, "lockdown", FamilyPlan([net]), dns_uid=0)


def test_private_networks_are_parsed_strictly() -> None:
    from sidecar_gen.firewall.networks import PRIVATE_FIX

    assert parse_networks("10.1.2.3/16 fd00::/8", "SIDECAR_FIREWALL_PRIVATE_NETWORKS",
                          PRIVATE_FIX) == ["10.1.0.0/16", "fd00::/8"]
    with pytest.raises(FirewallError, match="SIDECAR_FIREWALL_PRIVATE_NETWORKS: not a network"):
        parse_networks("corp.example", "SIDECAR_FIREWALL_PRIVATE_NETWORKS", PRIVATE_FIX)


def test_lockdown_ruleset_has_no_sets_and_no_dns_exception() -> None:
    for family in (4, 6):
        text = ruleset(family, "lockdown", FamilyPlan(), dns_uid=0)
        assert "--match-set" not in text
        assert "--uid-owner" not in text
        assert "-j REJECT" in text
        assert ":OUTPUT DROP" in text


def test_enforce_ruleset_v6_allows_only_neighbour_discovery_on_link_local() -> None:
    text = ruleset(6, "enforcing", FamilyPlan(["fd00:1::/64"], ["fd00:1::1"], []), dns_uid=998)
    lines = text.splitlines()
    chain = firewall.CHAIN
    nd = [line for line in lines if "--icmpv6-type" in line and f"-A {chain} " in line]
    assert [line.split("--icmpv6-type ")[1].split()[0] for line in nd] == [
        "router-solicitation", "neighbour-solicitation", "neighbour-advertisement"]
    assert all("-m hl --hl-eq 255 -j ACCEPT" in line for line in nd)
    # In: neighbour discovery from link-local peers, before new flows from elsewhere are dropped.
    ingress = [line for line in lines if line.startswith(f"-A {firewall.INGRESS_CHAIN} ")]
    nd_in = [line for line in ingress if "--icmpv6-type" in line]
    assert [line.split("--icmpv6-type ")[1].split()[0] for line in nd_in] == [
        "neighbour-solicitation", "neighbour-advertisement", "router-advertisement"]
    assert all("-m hl --hl-eq 255 -j ACCEPT" in line for line in nd_in)
    assert ingress[-2:] == [
        f"-A {firewall.INGRESS_CHAIN} -s fd00:1::/64 -m conntrack --ctstate NEW -j "
        f"{firewall.ALLOW_CHAIN}",
        f"-A {firewall.INGRESS_CHAIN} -m conntrack --ctstate NEW,ESTABLISHED,RELATED -j DROP"]
    link_local = lines.index(f"-A {chain} -d fe80::/10 -j REJECT --reject-with "
                             "icmp6-port-unreachable")
    assert lines.index(nd[-1]) < link_local
    assert lines.index(f"-A {chain} -d fd00:1::1/128 -p tcp -j REJECT --reject-with "
                       "tcp-reset") < lines.index(f"-A {chain} -d fd00:1::/64 -j "
                                                  f"{firewall.ALLOW_CHAIN}")
    assert "fe80::/10 -j ACCEPT" not in text
    assert f"-m set --match-set {firewall.SET6} dst -j {firewall.ALLOW_CHAIN}" in text


def test_gateways_and_host_ports() -> None:
    route4 = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\n"
              "eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
              "eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    route6 = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
              "fd000001000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n"
              "fd000001000000000000000000000000 40 00000000000000000000000000000000 00 "
              "00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n"
              "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
              "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n")
    assert route_gateways(route4, route6) == ["172.18.0.1", "fd00:1::1"]
    assert route_gateways(route4.splitlines()[0], route6.splitlines()[-1]) == []
    # The default route's gateway, then each network's first address (Docker's default).
    assert gateways(["172.18.0.0/16", "10.5.0.0/24", "fd00:1::/64", "10.9.9.9/32"],
                    ["172.18.0.254", "fe80::1"]) == [
        "172.18.0.254", "172.18.0.1", "10.5.0.1", "fd00:1::1"]
    assert parse_host_ports("5432, 6379 5432", HOST_PORTS) == [5432, 6379]
    assert parse_host_ports("", HOST_PORTS) == []
    for bad in ("0", "65536", "http", "-1"):
        with pytest.raises(FirewallError, match=f"{HOST_PORTS}: not a TCP port") as caught:
            parse_host_ports(bad, HOST_PORTS)
        assert "host_ports" in caught.value.fix


def test_capability_from_proc_status() -> None:
    assert has_capability(12, "CapEff:\t00000000a80435fb\n")  # Docker's default + NET_ADMIN
    assert not has_capability(12, "CapEff:\t00000000a80425fb\n")  # Docker's default


def test_up_result_messages_say_what_holds_and_how_to_fix() -> None:
    base = {"reason": "capabilities: no", "fix": "add it"}
    assert FirewallState("lockdown", **base).message() == (
        "FIREWALL FAILED CLOSED: capabilities: no; egress is blocked except the compose "
        "network. Claude Code will not start. To fix: add it")
    assert FirewallState("open", **base).message() == (
        "FIREWALL NOT ENFORCING: capabilities: no; egress is NOT blocked. Claude Code will "
        "not start. To fix: add it")
    assert "the default routes were removed" in FirewallState("isolated", **base).message()
    ok = FirewallState("enforcing", domains=["a.b"], networks=["10.0.0.0/8"], host_ports=[5432],
                  seconds=0.25).message()
    assert ok == ("firewall enforcing: 1 allowed domain(s) + GitHub, networks 10.0.0.0/8, "
                  "Docker host TCP 5432, ready in 250 ms")


def test_dnsmasq_config() -> None:
    text = dnsmasq_config(["allowed.test", "b.example"], Path("/run/x"), group="nogroup",
                          upstreams=["127.0.0.11"])
    lines = text.splitlines()
    assert "server=/allowed.test/127.0.0.11" in lines
    assert f"ipset=/b.example/{firewall.SET4},{firewall.SET6}" in lines
    assert "server=//127.0.0.11" in lines
    assert lines[-1] == "address=/#/"
    assert "cache-size=0" in lines
    assert "no-resolv" in lines and "listen-address=127.0.0.1" in lines
    assert "user=sidecar-dns" in lines
    assert "pid-file=/run/x/dnsmasq.pid" in lines


def test_resolv_conf_and_nameservers() -> None:
    docker = "search example.internal\nnameserver 127.0.0.11\noptions ndots:0\n"
    ours = resolv_conf(docker)
    assert ours.splitlines()[1:] == ["nameserver 127.0.0.1", "nameserver 127.0.0.2",
                                     "search example.internal",
                                     "options ndots:0"]
    assert nameservers(docker) == ["127.0.0.11"]
    assert nameservers("nameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver ::1\n") == [
        "10.0.0.2"]
    assert nameservers(ours) == ["127.0.0.11"]  # never ourselves


def test_github_ranges() -> None:
    meta = {"web": ["140.82.112.0/20", "2a0a:a440::/29"], "api": ["140.82.112.0/20"],
            "git": ["192.30.252.0/22", "not-a-net"], "actions": ["4.0.0.0/8"]}
    assert github_ranges(meta) == (["140.82.112.0/20", "192.30.252.0/22"], ["2a0a:a440::/29"])


def test_status_without_state_and_disabled(tmp_path: Path) -> None:
    status = firewall_status({}, state_dir=tmp_path)
    assert status.state == "unknown"
    assert not status.healthy
    off = firewall_status({"SIDECAR_FIREWALL": "0"}, state_dir=tmp_path)
    assert off.state == "disabled"
    assert off.healthy


def test_status_from_a_lockdown_state_file(tmp_path: Path) -> None:
    result = FirewallState("lockdown", reason="x: broken", fix="f", networks=["10.0.0.0/8"])
    save_state(tmp_path, result)
    status = firewall_status({}, state_dir=tmp_path)
    assert status.state == "lockdown"
    assert status.detail == result.message()
    assert status.networks == ["10.0.0.0/8"]
    assert not status.healthy


def test_the_allowlist_read_is_the_approved_one() -> None:
    assert firewall.policy_domains_file({}) == Path("/run/sidecar/policy/allowed-domains.txt")
    assert firewall.policy_domains_file({"SIDECAR_POLICY_DIR": "/p",
                                         "SIDECAR_CONFIG_DIR": "/workspace/.sidecar"}) == Path(
        "/p/allowed-domains.txt")


def test_each_option_keeps_its_name_from_bridge_yaml_to_status() -> None:
    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" /
                         "bridge.schema.json").read_text())
    keys = set(schema["$defs"]["sidecar"]["properties"]["firewall"]["properties"])
    model_fields = {f.name for f in fields(Firewall)}
    state_fields = {f.name for f in fields(FirewallState)}
    for option in OPTIONS:
        assert option.name in state_fields, option.name
        if option.in_bridge:
            assert option.name in keys and option.name in model_fields, option.name


def test_options_travel_from_the_model_to_firewall_up_through_the_environment() -> None:
    wanted = Firewall(host_ports=(80, 5432), private_networks=("10.1.0.0/16", "fd00::/8"))
    environ = {variable: value for variable, value, _ in environment(wanted)}
    assert set(environ) == {"SIDECAR_FIREWALL_HOST_PORTS", "SIDECAR_FIREWALL_PRIVATE_NETWORKS"}
    read = {o.name: read_option(o, environ) for o in OPTIONS}
    assert read == {"networks": "auto", "host_ports": [80, 5432],
                    "private_networks": ["10.1.0.0/16", "fd00::/8"]}
    assert environment(Firewall(enabled=False, host_ports=(80,))) == []


def test_status_reports_what_up_recorded_private_networks_included(tmp_path: Path) -> None:
    result = FirewallState("isolated", reason="x: broken", fix="f", networks=["10.0.0.0/8"],
                           host_ports=[5432], private_networks=["10.9.0.0/16"])
    save_state(tmp_path, result)
    status = firewall_status({}, state_dir=tmp_path)
    assert status.to_dict()["private_networks"] == ["10.9.0.0/16"]
    assert (status.state, status.host_ports, status.reason) == ("isolated", [5432], "x: broken")


def test_a_ruleset_has_one_of_two_modes() -> None:
    with pytest.raises(ValueError, match="enforce"):
        ruleset(4, "enforce", FamilyPlan(), dns_uid=0)


def test_the_record_of_up_reads_back_whole(tmp_path: Path) -> None:
    state = FirewallState("lockdown", reason="r", fix="f", error="e", domains=["a.b"],
                          networks=["10.0.0.0/8"], gateways=["10.0.0.1"], host_ports=[80],
                          private_networks=["10.9.0.0/16"], ipv6=False, seconds=0.5)
    save_state(tmp_path, state)
    assert load_state(tmp_path) == replace(state, detail=state.message())
    (tmp_path / "state.json").write_text('{"state": "enforce", "host_ports": ["80", true]}')
    assert load_state(tmp_path) == FirewallState("unknown", ipv6=False)


def test_a_bad_option_still_leaves_the_networks_to_the_lockdown_rules() -> None:
    from sidecar_gen.firewall.apply import _plan

    result = FirewallState("enforcing", ipv6=False)
    with pytest.raises(FirewallError, match="SIDECAR_FIREWALL_HOST_PORTS: not a TCP port"):
        _plan({"SIDECAR_FIREWALL_NETWORKS": "10.0.0.0/8",
               "SIDECAR_FIREWALL_HOST_PORTS": "x"}, result)
    assert result.networks == ["10.0.0.0/8"]
    assert "10.0.0.1" in result.gateways
