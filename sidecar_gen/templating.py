"""The one Jinja environment: StrictUndefined, packaged templates, errors as user errors.

Every template sees the stack's names and paths as `names` (`runtime/names.py`): a template
writes `{{ names.GATE_SERVICE }}`, never the literal.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jinja2

from sidecar_gen import resources
from sidecar_gen.errors import ExitCode, SidecarError
from sidecar_gen.runtime import names

# Strings YAML would read as something other than a plain string.
_YAML_SPECIAL = re.compile(
    r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off"
    r"|OFF|y|Y|n|N|[-+]?(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+|0o[0-7]+"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|\d{4}-\d\d?-\d\d?.*)$"
)
_YAML_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./@+-]*(?::[A-Za-z0-9_./@+-]+)*$")


def yaml_scalar(value: object) -> str:
    """Render a value as a YAML scalar that reads back as the same string/number/bool."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if _YAML_PLAIN.match(text) and not _YAML_SPECIAL.match(text):
        return text
    # A JSON string is a valid double-quoted YAML scalar.
    return json.dumps(text, ensure_ascii=False)


def yaml_comment(value: object, limit: int = 120) -> str:
    """Text safe inside a `#` comment: one line (no line break YAML knows), bounded."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."


class TemplateError(SidecarError):
    """A template failed to render: names the template and line."""

    def __init__(self, template: str, line: int | None, reason: str) -> None:
        where = f"{template}:{line}" if line else template
        super().__init__(f"template {where}: {reason}", exit_code=ExitCode.INTERNAL)


@cache
def environment() -> jinja2.Environment:
    """The project's single Jinja environment."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: resources.read_text("templates", name)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - we render YAML and shell, never HTML
    )
    env.filters["yaml"] = yaml_scalar
    env.filters["comment"] = yaml_comment
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    env.globals["names"] = {k: v for k, v in vars(names).items() if k.isupper()}
    return env


def render(template: str, **context: Any) -> str:
    """Render one packaged template; errors become TemplateError."""
    try:
        return environment().get_template(template).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(template, exc.lineno, exc.message or "syntax error") from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(template, None, str(exc)) from exc
    except (OSError, jinja2.TemplateNotFound) as exc:
        raise TemplateError(template, None, f"cannot read template: {exc}") from exc
