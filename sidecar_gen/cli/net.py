"""`sidecar net` (the egress the agent tried, and the allowlist, changed live) and `sidecar
audit` (one stream: gate, egress, approvals, broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sidecar_gen.cli.app import app, handle_errors
from sidecar_gen.cli.output import say, use_color
from sidecar_gen.errors import SidecarError
from sidecar_gen.runtime.escape import escape

if TYPE_CHECKING:
    from sidecar_gen.audit.stream import Query
    from sidecar_gen.compose.cli import ComposeTarget

net_app = typer.Typer(
    name="net",
    help="The egress the agent tried (refused and allowed) and the allowlist, changed live.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(net_app)

DirOption = Annotated[Path, typer.Option("--dir", "-C", help="Project directory.",
                                         file_okay=False)]
ProjectOption = Annotated[str | None, typer.Option(
    "--project", "-p", help="Compose project name [default: COMPOSE_PROJECT_NAME, else the "
    "directory's name].", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON line per event.")]
SinceOption = Annotated[str | None, typer.Option(
    help="Only events since DURATION ago (30s, 10m, 2h, 7d) or an ISO time.",
    show_default=False)]
FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")]
SessionOption = Annotated[str | None, typer.Option(
    "--session", "-s", help="Only session NAME's events.", show_default=False)]


def _target(directory: Path) -> ComposeTarget:
    from sidecar_gen.compose.cli import ComposeTarget

    if not directory.is_dir():
        raise SidecarError(f"{directory}: no such directory")
    return ComposeTarget(directory.resolve())


def _query(directory: Path, project: str | None, since: str | None, session: str | None, *,
           sources: tuple[str, ...], broker_log: Path | None = None) -> Query:
    from sidecar_gen.audit.stream import Query, parse_since
    from sidecar_gen.compose.project import normalize_project_name
    from sidecar_gen.trust.actions import store_for

    target = _target(directory)
    env = target.environ()
    name = (project or target.project or env.get("COMPOSE_PROJECT_NAME")
            or normalize_project_name(target.directory.name))
    state_dir = store_for(target).directory(target.directory)
    return Query(name, state_dir if state_dir.is_dir() else None, parse_since(since), session,
                 sources=sources, broker_log=broker_log)


def _print(query: Query, as_json: bool, follow: bool) -> None:
    from sidecar_gen.audit.envelope import to_json, to_text
    from sidecar_gen.audit.stream import collect
    from sidecar_gen.audit.stream import follow as follow_events
    from sidecar_gen.host.engine import connect

    color = use_color()

    def show(event: dict[str, object]) -> None:
        typer.echo(to_json(event) if as_json else to_text(event, color))

    events = follow_events(connect, query) if follow else iter(collect(connect(), query))
    for event in events:
        show(event)


@net_app.command("log")
@handle_errors
def net_log(*, directory: DirOption = Path("."), project: ProjectOption = None,
            as_json: JsonOption = False, since: SinceOption = None,
            follow: FollowOption = False, session: SessionOption = None) -> None:
    """What the agent's egress met: refused names and connections (with why) and the
    allowed names it reached (per name: first and last time, count).

    Exit codes: 0 printed, 2 usage error (or no engine).
    """
    _print(_query(directory, project, since, session, sources=("egress",)), as_json, follow)


@net_app.command("pending")
@handle_errors
def net_pending(*, directory: DirOption = Path("."), project: ProjectOption = None,
                as_json: JsonOption = False, since: SinceOption = None,
                session: SessionOption = None) -> None:
    """Names the agent was refused that you have not decided on yet, with counts.

    Exit codes: 0 printed (also when none), 2 usage error.
    """
    from sidecar_gen.audit.stream import collect, pending
    from sidecar_gen.host.engine import connect

    query = _query(directory, project, since, session, sources=("egress", "approval"))
    found = pending(collect(connect(), query))
    if as_json:
        for item in found:
            typer.echo(json.dumps(item.__dict__, ensure_ascii=True))
        return
    if not found:
        say("no pending names")
        return
    width = max(len(item.name) for item in found)
    for item in found:
        say(f"{escape(item.name):<{width}}  {item.count:>6}  {item.last}  "
            f"{escape(','.join(item.sessions))}")
    say(f"allow with: sidecar net allow {' '.join(escape(i.name) for i in found[:5])}")


def _change(names: list[str], directory: Path, allow: bool, as_json: bool) -> None:
    from sidecar_gen.host.engine import connect
    from sidecar_gen.trust.netpolicy import change_allowlist, check_names

    check_names(names)  # before anything else: a bad name never needs the engine
    result = change_allowlist(_target(directory), names, allow=allow, connect=connect)
    if as_json:
        typer.echo(json.dumps(result.__dict__, ensure_ascii=True))
    else:
        verb = "allowed" if allow else "denied"
        same = [n for n in result.names if n not in result.changed]
        say(f"sidecar: {verb}: {', '.join(result.changed) or 'nothing new'}"
            + (f" (already so: {', '.join(same)})" if same else "")
            + f"; approval recorded in {result.record}")
        reloaded = ", ".join(result.reloaded) or "no running claude container"
        say(f"sidecar: firewall reloaded in place: {escape(reloaded)}")
    for failure in result.failed:
        say(f"sidecar: error: reload failed: {escape(failure)}", err=True)
    if result.failed:
        raise typer.Exit(1)


NamesArgument = Annotated[list[str], typer.Argument(help="Host names (bare domains).",
                                                    show_default=False)]


@net_app.command("allow")
@handle_errors
def net_allow(names: NamesArgument, directory: DirOption = Path("."),
              as_json: JsonOption = False) -> None:
    """Allow HOST... (and their subdomains): bridge.yaml's sidecar.firewall.domains (comments
    kept), the approval, the policy volume, and the running firewall, reloaded in place
    (Claude Code keeps running; the name answers at once).

    Refuses when anything else changed since your approval (`sidecar trust` first). Exit
    codes: 0 done, 1 refused or a reload failed, 2 a bad name (an IP, a URL, a public suffix,
    an empty name, a name with spaces) or usage error.
    """
    _change(names, directory, True, as_json)


@net_app.command("deny")
@handle_errors
def net_deny(names: NamesArgument, directory: DirOption = Path("."),
             as_json: JsonOption = False) -> None:
    """Take HOST... out of the allowlist, the same way as `allow`; the allowed-address sets are
    emptied, so the name's addresses close at once (open connections stay).

    Exit codes: as `allow`.
    """
    _change(names, directory, False, as_json)


@app.command()
@handle_errors
def audit(*, directory: DirOption = Path("."), project: ProjectOption = None,
          as_json: JsonOption = False, since: SinceOption = None, follow: FollowOption = False,
          session: SessionOption = None,
          broker_log: Annotated[Path | None, typer.Option(
              help="Also merge this broker record (`sidecar broker --log`).",
              dir_okay=False, show_default=False)] = None) -> None:
    """One audit stream, in time order: the gate's decisions (exec: argv, user, env names,
    workdir), egress (refused and allowed), your `net` approvals, the broker's requests.

    One versioned JSON line per event with --json (schemas/audit-event.schema.json); aligned
    text otherwise (colour on a terminal, NO_COLOR honoured). Exit codes: 0, 2 usage error.
    """
    _print(_query(directory, project, since, session,
                  sources=("gate", "egress", "approval", "broker"), broker_log=broker_log),
           as_json, follow)
