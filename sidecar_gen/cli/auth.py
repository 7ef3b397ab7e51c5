"""`sidecar auth`: the real credentials the broker uses, stored on the host (never printed)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors
from sidecar_gen.errors import ExitCode, InputError, SidecarError

auth_app = typer.Typer(
    name="auth",
    help="The real credentials, kept in your state folder on the host (the agent gets a "
         "placeholder; the broker adds the real one).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(auth_app)

ApiKey = Annotated[bool, typer.Option("--api-key", help="An Anthropic API key.")]
OauthToken = Annotated[bool, typer.Option(
    "--oauth-token", help="A Claude OAuth token (`claude setup-token`).")]
GithubToken = Annotated[bool, typer.Option(
    "--github-token", help="A GitHub token (git over HTTPS for the listed repositories).")]


def _kind(api_key: bool, oauth_token: bool, github_token: bool) -> str:
    from sidecar_gen.broker.credentials import API_KEY, GITHUB_TOKEN, OAUTH_TOKEN

    chosen = [kind for kind, flag in ((API_KEY, api_key), (OAUTH_TOKEN, oauth_token),
                                      (GITHUB_TOKEN, github_token)) if flag]
    if len(chosen) != 1:
        raise SidecarError("say which credential: exactly one of --api-key, --oauth-token, "
                           "--github-token")
    return chosen[0]


def _read_input(source: str | None, kind: str) -> str:
    """The secret from a file, stdin (`-`) or a prompt without echo; never from argv."""
    from sidecar_gen.broker.credentials import DESCRIPTION, MAX_SECRET, clean_secret
    from sidecar_gen.fsutil import open_regular

    if source == "-":
        return clean_secret(sys.stdin.buffer.read(MAX_SECRET + 2), "stdin", kind)
    if source is not None:
        if not os.path.lexists(source):
            # Not repeated: a secret typed in place of the file name would be shown again.
            raise SidecarError("--from-file: no such file (its name is not repeated here, in "
                               "case it was the secret itself)")
        with os.fdopen(open_regular(Path(source)), "rb") as handle:
            try:
                raw = handle.read(MAX_SECRET + 2)
            except OSError as exc:
                raise InputError(source, f"cannot read: {exc.strerror or exc}") from None
        return clean_secret(raw, source, kind)
    if not sys.stdin.isatty():
        raise SidecarError("no terminal to ask for the secret: use --from-file FILE, or "
                           "--from-file - to read it from stdin")
    value = getpass.getpass(f"{DESCRIPTION[kind]} (not shown): ")
    return clean_secret(value.encode("utf-8", "replace"), "the value typed", kind)


@auth_app.command("set", context_settings={"allow_extra_args": True})
@handle_errors
def auth_set_command(
    ctx: typer.Context,
    *,
    api_key: ApiKey = False,
    oauth_token: OauthToken = False,
    github_token: GithubToken = False,
    from_file: Annotated[str | None, typer.Option(
        "--from-file", metavar="FILE|-",
        help="Read the secret from FILE, or from stdin with `-` [default: ask, without "
             "echo].")] = None,
    force: Annotated[bool, typer.Option(
        help="Replace a stored credential of the same service.")] = False,
) -> None:
    """Store a credential (0600, in $XDG_STATE_HOME/claude-sidecar/credentials/).

    The value is never an argument (the process list would show it) and never printed.
    Exit codes: 0 stored; 2 usage error, an unreadable or invalid value, or a credential of the
    same service already stored (use --force).
    """
    from sidecar_gen.auth import CredentialStore
    from sidecar_gen.broker.credentials import DESCRIPTION

    if ctx.args:
        # Never echoed back: it may be the secret itself, typed where `ps` shows it.
        raise SidecarError("the secret is never taken from the command line (the process "
                           "list shows it): use --from-file FILE, --from-file -, or type it "
                           "at the prompt")
    kind = _kind(api_key, oauth_token, github_token)
    value = _read_input(from_file, kind)
    stored = CredentialStore().put(kind, value, force=force)
    replaced = [DESCRIPTION[k] for k in stored.replaced]
    typer.echo(f"sidecar: {DESCRIPTION[kind]} stored in {stored.path}"
               + (f" (replaced the stored {' and '.join(replaced)})" if replaced else ""),
               err=True)


@auth_app.command("status")
@handle_errors
def auth_status_command() -> None:
    """Say which credentials the broker would use, and from where (never their values).

    Exit codes: 0 an Anthropic credential is configured; 1 none is; 2 a stored one is unusable.
    """
    from sidecar_gen.auth import CredentialStore, resolve

    resolved = resolve(CredentialStore())
    if resolved.anthropic is None:
        typer.echo("anthropic: none (set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN, or run "
                   "`sidecar auth set --api-key` or `--oauth-token`)")
    else:
        typer.echo(f"anthropic: {resolved.anthropic.description} from "
                   f"{resolved.anthropic.origin}")
    for source in resolved.overridden:
        typer.echo(f"  overridden: {source.description} from {source.origin}")
    if resolved.github is None:
        typer.echo("github: none (optional: `sidecar auth set --github-token`)")
    else:
        typer.echo(f"github: {resolved.github.description} from {resolved.github.origin}")
    if resolved.anthropic is None:
        raise typer.Exit(int(ExitCode.FINDINGS))


@auth_app.command("unset")
@handle_errors
def auth_unset_command(
    api_key: ApiKey = False,
    oauth_token: OauthToken = False,
    github_token: GithubToken = False,
) -> None:
    """Delete a stored credential. Exit codes: 0 deleted or none stored; 2 usage error."""
    from sidecar_gen.auth import CredentialStore
    from sidecar_gen.broker.credentials import DESCRIPTION

    kind = _kind(api_key, oauth_token, github_token)
    store = CredentialStore()
    if store.remove(kind):
        typer.echo(f"sidecar: {DESCRIPTION[kind]} deleted from {store.path(kind)}", err=True)
    else:
        typer.echo(f"sidecar: no {DESCRIPTION[kind]} stored", err=True)
