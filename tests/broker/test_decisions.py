"""The broker's pure parts on their own: canonical targets, the request table, the decision,
the credentials and placeholders (no sockets)."""

from __future__ import annotations

from pathlib import Path

import h11
import pytest

from broker.conftest import API_KEY, GITHUB, OAUTH, write_secrets
from sidecar_gen.broker.credentials import (
    PLACEHOLDER,
    Credentials,
    load_credentials,
    placeholder_problem,
    secret_problem,
)
from sidecar_gen.broker.decide import BrokerPolicy, DeniedError, decide, parse_repo_spec
from sidecar_gen.broker.endpoints import ENDPOINTS, NotForwardedError, lookup
from sidecar_gen.broker.origin import Origin, parse_origin
from sidecar_gen.broker.target import TargetError, host_allowed, parse_target
from sidecar_gen.errors import InputError

POLICY = BrokerPolicy(
    anthropic=Origin("api.anthropic.com"), github=Origin("github.com"),
    credentials=Credentials("api-key", API_KEY, GITHUB),
    repositories={"octo/app": False, "octo/lib": True})


def _request(method: str, target: str, headers: list[tuple[str, str]] | None = None
             ) -> h11.Request:
    hdrs = [("Host", "sidecar-broker:8080"), *(headers or [])]
    return h11.Request(method=method, target=target, headers=hdrs)


@pytest.mark.parametrize("raw", [
    "/v1/messages", "/v1/messages?beta=true", "/v1/models/claude-sonnet-4-5_x",
    "/git/github.com/octo/app.git/info/refs?service=git-upload-pack"])
def test_canonical_targets_parse(raw: str) -> None:
    assert parse_target(raw).render() == raw


@pytest.mark.parametrize(("raw", "why"), [
    ("http://evil.example/v1/messages", "naming a host"),
    ("https://api.anthropic.com/v1/messages", "naming a host"),
    ("evil.example:443", "naming a host"),
    ("*", "asterisk"),
    ("//evil.example/v1/messages", "doubled slash"),
    ("/v1//messages", "doubled slash"),
    ("/v1/messages/", "trailing slash"),
    ("/v1/../v1/messages", "dot segment"),
    ("/v1/./messages", "dot segment"),
    ("/v1/%2e%2e/messages", "percent-escape"),
    ("/v1%2fmessages", "percent-escape"),
    ("/v1/messages%3Fbeta=true", "percent-escape"),
    ("/v1\\messages", "backslash"),
    ("/v1/messages;x=1", "semicolon"),
    ("/v1/messages#x", "fragment"),
    ("/v1/messages?beta=true&beta=false", "repeated"),
    ("/v1/messages?beta", "name=value"),
    ("/v1/messages?", "empty query"),
    ("/v1/mess ages", "character outside"),
    ("/v1/messages\x00", "character outside"),
    ("/" + "a" * 3000, "longer than"),
])
def test_non_canonical_targets_are_refused(raw: str, why: str) -> None:
    with pytest.raises(TargetError, match=why):
        parse_target(raw)


@pytest.mark.parametrize(("method", "raw", "ok"), [
    ("POST", "/v1/messages?beta=true", True),
    ("POST", "/v1/messages", True),
    ("POST", "/v1/messages/count_tokens?beta=true", True),
    ("GET", "/v1/models?limit=20", True),
    ("GET", "/v1/models/claude-opus-4-1", True),
    ("HEAD", "/api/hello", True),
    ("GET", "/v1/messages", False),  # wrong method
    ("post", "/v1/messages", False),  # methods are exact
    ("DELETE", "/v1/models/claude-x", False),
    ("POST", "/v1/messages?beta=false", False),
    ("POST", "/v1/messages?stream=true", False),
    ("GET", "/v1/files", False),
    ("POST", "/v1/messages/batches", False),
    ("GET", "/v1/models/a/b", False),
    ("GET", "/git/github.com/octo/app/info/refs", False),  # service is required
    ("GET", "/git/github.com/octo/app/info/refs?service=git-upload-archive", False),
    ("GET", "/git/github.com/octo/app/objects/info/packs", False),  # dumb HTTP
    ("POST", "/git/github.com/octo/app/git-upload-archive", False),
])
def test_the_table(method: str, raw: str, ok: bool) -> None:
    target = parse_target(raw)
    if ok:
        assert lookup(method, target).endpoint.method == method
    else:
        with pytest.raises(NotForwardedError):
            lookup(method, target)


def test_every_row_is_reachable_and_distinct() -> None:
    seen = set()
    for row in ENDPOINTS:
        key = (row.method, row.template, tuple(sorted(row.query.items())))
        assert key not in seen
        seen.add(key)
        assert row.method == row.method.upper()
        assert row.max_body >= 0


def test_decide_swaps_the_credential_and_keeps_the_target() -> None:
    plan = decide(_request("POST", "/v1/messages?beta=true",
                           [("x-api-key", PLACEHOLDER["api-key"])]), POLICY)
    assert plan.upstream_target == b"/v1/messages?beta=true"
    assert plan.credential == (b"x-api-key", API_KEY.encode())
    oauth = BrokerPolicy(anthropic=Origin("api.anthropic.com", 443, "/proxy"),
                         github=Origin("github.com"),
                         credentials=Credentials("oauth-token", OAUTH))
    plan = decide(_request("POST", "/v1/messages",
                           [("Authorization", "Bearer " + PLACEHOLDER["oauth-token"])]), oauth)
    assert plan.credential == (b"Authorization", f"Bearer {OAUTH}".encode())
    assert plan.upstream_target == b"/proxy/v1/messages"


@pytest.mark.parametrize(("method", "target", "headers", "status", "why"), [
    ("CONNECT", "evil.example:443", [], 403, "CONNECT"),
    ("TRACE", "/v1/messages", [], 403, "TRACE"),
    ("POST", "/v1/messages", [("Host", "evil.example")], 403, "another host"),
    ("GET", "/v1/models", [("Upgrade", "websocket"), ("Connection", "Upgrade")], 403,
     "upgrades"),
    ("POST", "/v1/messages", [("Expect", "something")], 417, "Expect"),
    ("GET", "/v1/models", [("Content-Length", "5")], 413, "takes no body"),
    ("POST", "/v1/messages", [("Content-Length", str(32 * 2**20 + 1))], 413, "larger"),
    ("POST", "/v1/messages", [("x-api-key", "sk-ant-api03-someone-elses-key")], 401,
     "not the broker's placeholder"),
    ("POST", "/v1/messages", [("Authorization", "Basic dXNlcjpwYXNz")], 401, "Bearer"),
    ("GET", "/git/github.com/octo/other/info/refs?service=git-upload-pack", [], 403,
     "not a repository"),
    ("GET", "/git/github.com/octo/app/info/refs?service=git-receive-pack", [], 403,
     "read-only"),
    ("POST", "/git/github.com/octo/app.git/git-receive-pack", [], 403, "read-only"),
])
def test_decide_refuses(method: str, target: str, headers: list[tuple[str, str]],
                        status: int, why: str) -> None:
    hdrs = headers if any(k == "Host" for k, _ in headers) else \
        [("Host", "sidecar-broker"), *headers]
    with pytest.raises(DeniedError, match=why) as caught:
        decide(h11.Request(method=method, target=target, headers=hdrs), POLICY)
    assert caught.value.status == status
    assert API_KEY not in caught.value.reason and GITHUB not in caught.value.reason


def test_git_is_refused_without_a_token_and_api_without_a_key() -> None:
    bare = BrokerPolicy(anthropic=Origin("a.test"), github=Origin("g.test"),
                        credentials=Credentials(), repositories={"octo/app": True})
    with pytest.raises(DeniedError, match="no GitHub token") as caught:
        decide(_request("GET", "/git/github.com/octo/app/info/refs?service=git-upload-pack"),
               bare)
    assert caught.value.status == 401
    with pytest.raises(DeniedError, match="no Anthropic credential"):
        decide(_request("POST", "/v1/messages"), bare)
    # The connectivity check needs no credential.
    assert decide(_request("HEAD", "/api/hello"), bare).credential is None


def test_git_repositories_match_case_insensitively_and_map_to_the_upstream() -> None:
    plan = decide(_request("POST", "/git/github.com/Octo/LIB.git/git-receive-pack"), POLICY)
    assert plan.upstream_target == b"/Octo/LIB.git/git-receive-pack"
    assert plan.repository == "Octo/LIB"
    assert plan.credential is not None and plan.credential[1].startswith(b"Basic ")


@pytest.mark.parametrize(("spec", "parsed"), [
    ("octo/app", ("octo/app", False)), ("Octo/App.git:push", ("octo/app", True)),
    ("octo/my_repo.js:read", ("octo/my_repo.js", False))])
def test_repo_specs(spec: str, parsed: tuple[str, bool]) -> None:
    assert parse_repo_spec(spec) == parsed


@pytest.mark.parametrize("spec", ["octo", "octo/app/x", "octo/..", "-x/app", "octo/app:write",
                                  "octo/app:push:push", ""])
def test_bad_repo_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="OWNER/REPO"):
        parse_repo_spec(spec)


@pytest.mark.parametrize(("host", "ok"), [
    (b"sidecar-broker", True), (b"sidecar-broker:8080", True), (b"SIDECAR-BROKER:8080", True),
    (b"127.0.0.1:1234", True), (b"[::1]:80", True), (b"api.anthropic.com", False),
    (b"sidecar-broker:80x", False), (b"sidecar-broker.evil", False), (b"", False),
    (b"[::1]x", False), (None, False)])
def test_host_header(host: bytes | None, ok: bool) -> None:
    assert host_allowed(host, ("sidecar-broker", "127.0.0.1", "[::1]")) is ok


def test_placeholders() -> None:
    for value in PLACEHOLDER.values():
        assert placeholder_problem(b"x-api-key", value.encode()) is None
        assert placeholder_problem(b"authorization", b"Bearer " + value.encode()) is None
    assert placeholder_problem(b"x-api-key", b"") is None
    assert placeholder_problem(b"x-api-key", API_KEY.encode()) is not None
    assert API_KEY not in (placeholder_problem(b"x-api-key", API_KEY.encode()) or "")


@pytest.mark.parametrize(("kind", "value", "why"), [
    ("api-key", "", "empty"),
    ("api-key", "sk-ant-api03 with space", "not visible ASCII"),
    ("api-key", OAUTH, "looks like a Claude OAuth token"),
    ("oauth-token", API_KEY, "looks like an Anthropic API key"),
    ("api-key", PLACEHOLDER["api-key"], "placeholder"),
    ("github-token", "x" * 20000, "longer than"),
])
def test_secret_problems_never_quote_the_value(kind: str, value: str, why: str) -> None:
    problem = secret_problem(kind, value)
    assert problem is not None and why in problem
    assert (value[:12] not in problem) or not value.strip()


def test_credentials_folder(tmp_path: Path) -> None:
    folder = write_secrets(tmp_path / "s", oauth_token=OAUTH, github_token=GITHUB)
    creds = load_credentials(folder)
    assert (creds.anthropic_kind, creds.anthropic, creds.github) == ("oauth-token", OAUTH,
                                                                      GITHUB)
    assert OAUTH not in repr(creds) and GITHUB not in repr(creds)
    assert creds.kinds() == ["oauth-token", "github-token"]
    write_secrets(folder, api_key=API_KEY)
    with pytest.raises(InputError, match="both an api-key and an oauth-token"):
        load_credentials(folder)


def test_a_fifo_as_secret_is_refused_at_once(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "s"
    folder.mkdir()
    os.mkfifo(folder / "api-key")
    with pytest.raises(InputError, match="FIFO"):
        load_credentials(folder)


@pytest.mark.parametrize("url", ["http://api.anthropic.com", "https://u:p@a.test",
                                 "https://a.test/x?y=1", "ftp://a.test", "https://",
                                 "https://a.test:99999"])
def test_upstreams_must_be_plain_https(url: str) -> None:
    with pytest.raises(InputError):
        parse_origin(url, "--upstream")


def test_upstream_origin() -> None:
    origin = parse_origin("https://Proxy.Example:8443/anthropic/", "--upstream")
    assert (origin.host, origin.port, origin.prefix) == ("proxy.example", 8443, "/anthropic")
    assert origin.host_header == b"proxy.example:8443"
    assert parse_origin("https://api.anthropic.com", "x").host_header == b"api.anthropic.com"


def test_an_empty_secret_file_is_a_kind_not_held(tmp_path: Path) -> None:
    # `sidecar up` writes every kind; the ones not configured are empty files.
    folder = write_secrets(tmp_path / "s", oauth_token=OAUTH)
    (folder / "api-key").write_bytes(b"")
    (folder / "github-token").write_bytes(b"")
    creds = load_credentials(folder)
    assert (creds.anthropic_kind, creds.anthropic, creds.github) == ("oauth-token", OAUTH, None)
    (folder / "oauth-token").write_bytes(b"")
    assert load_credentials(folder).kinds() == []
