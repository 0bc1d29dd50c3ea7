"""Typed parameters: ``spec.parameters``, their values for one run, and how Jobs receive them.

A CronWorkflow declares parameters (``name``, ``type`` string/integer/boolean/enum, ``default``,
``enum``, ``description``). Every Job gets each one as an environment variable in every container
(init containers too): ``PARAM_`` followed by the name in upper case with every character that is
not an ASCII letter or digit turned into ``_`` (``batch-size`` → ``PARAM_BATCH_SIZE``). A variable
of the same name already in the template is replaced, so what the Job says is what ran.

Values are strings, as environment variables are: the CRD takes ``default`` as a string, checks it
against the type (CEL), and :func:`parse` checks again. A scheduled run uses the defaults; a manual
run (the webhook API, ``qstash-operator trigger --param k=v``, the run-now annotation's companion)
may override any of them. Overrides are validated before anything is created (:func:`values`):
an unknown name or a value of the wrong type raises :class:`InvalidSpecError` naming
``parameters.<name>`` (a 422 over HTTP), so no Job ever carries a bad value. Integers are written
in decimal with an optional ``-`` (no ``+``, no spaces, no leading zeros beyond ``0``), booleans
as ``true`` or ``false`` (JSON's ``true`` and ``12`` are accepted over HTTP and written so).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from qstash_operator.domain.errors import InvalidSpecError

REASON_INVALID_PARAMETER: Final = "InvalidParameter"
ENV_PREFIX: Final = "PARAM_"
MAX_VALUE_CHARS: Final = 4096

_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
_INTEGER: Final = re.compile(r"^(0|-?[1-9][0-9]{0,18})$")
_NOT_ALNUM: Final = re.compile(r"[^A-Za-z0-9]")


class ParameterType(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ENUM = "enum"


@dataclasses.dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    default: str
    enum: tuple[str, ...] = ()
    description: str = ""

    @property
    def env_name(self) -> str:
        return env_name(self.name)


def env_name(name: str) -> str:
    """The environment variable a parameter is given as (rule in the module docstring)."""
    return ENV_PREFIX + _NOT_ALNUM.sub("_", name).upper()


def _problem(parameter: Parameter, value: str) -> str | None:
    """What is wrong with ``value`` for ``parameter`` (None: nothing)."""
    if len(value) > MAX_VALUE_CHARS:
        return f"is {len(value)} characters long, more than {MAX_VALUE_CHARS}"
    if parameter.type is ParameterType.INTEGER and not _INTEGER.match(value):
        return f"{value!r} is not an integer (write decimal digits, e.g. 10 or -3)"
    if parameter.type is ParameterType.BOOLEAN and value not in ("true", "false"):
        return f"{value!r} is not a boolean (write true or false)"
    if parameter.type is ParameterType.ENUM and value not in parameter.enum:
        return f"{value!r} is not one of {', '.join(parameter.enum)}"
    return None


def parse(raw: Any, *, field: str = "spec.parameters") -> tuple[Parameter, ...]:
    """``spec.parameters`` into :class:`Parameter` values; refusals name the item's field."""
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise InvalidSpecError(field, "must be a list", "Give a list of {name, type, default}.")
    found: list[Parameter] = []
    env_names: dict[str, str] = {}
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidSpecError(where, "must be an object", "Give name, type and default.")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidSpecError(
                f"{where}.name",
                f"{name!r} is not a parameter name",
                "Start with a letter or '_', then letters, digits, '_', '-' or '.' (at most 63).",
            )
        kind_text = item.get("type", "string")
        try:
            kind = ParameterType(kind_text)
        except ValueError:
            raise InvalidSpecError(
                f"{where}.type",
                f"unknown type {kind_text!r}",
                "Use string, integer, boolean or enum.",
            ) from None
        choices = item.get("enum") or []
        if not isinstance(choices, Sequence) or not all(isinstance(c, str) for c in choices):
            raise InvalidSpecError(f"{where}.enum", "must be a list of strings", "e.g. [a, b].")
        if kind is ParameterType.ENUM and not choices:
            raise InvalidSpecError(
                f"{where}.enum", "is empty for a parameter of type enum", "List the allowed values."
            )
        default = item.get("default")
        if not isinstance(default, str):
            raise InvalidSpecError(
                f"{where}.default",
                f"must be a string, got {default!r}",
                'Quote it: default: "10", default: "true".',
            )
        parameter = Parameter(
            name=name,
            type=kind,
            default=default,
            enum=tuple(choices),
            description=str(item.get("description") or ""),
        )
        problem = _problem(parameter, default)
        if problem is not None:
            raise InvalidSpecError(f"{where}.default", problem, "Give a default of the type.")
        clash = env_names.get(parameter.env_name)
        if clash is not None:
            raise InvalidSpecError(
                f"{where}.name",
                f"{name!r} and {clash!r} both become {parameter.env_name}",
                "Rename one of them.",
            )
        env_names[parameter.env_name] = name
        found.append(parameter)
    return tuple(found)


def normalise(value: Any) -> str | None:
    """An override as given over JSON, as the string a Job receives (None: not a scalar)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def values(
    declared: Sequence[Parameter],
    overrides: Mapping[str, Any] | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Each parameter's value for one run: ``overrides``, else ``base`` (a schedule entry's
    values), else the default. Raises :class:`InvalidSpecError` naming ``parameters.<name>``
    for an unknown name or a value of the wrong type; nothing is returned half-checked."""
    by_name = {parameter.name: parameter for parameter in declared}
    chosen = {parameter.name: parameter.default for parameter in declared}
    for layer in (base or {}), (overrides or {}):
        for name, raw in layer.items():
            parameter = by_name.get(name)
            if parameter is None:
                known = ", ".join(sorted(by_name)) or "none are declared"
                raise InvalidSpecError(
                    f"parameters.{name}",
                    "is not a parameter of this CronWorkflow",
                    f"Use one of spec.parameters ({known}).",
                    reason=REASON_INVALID_PARAMETER,
                )
            value = normalise(raw)
            problem = (
                f"must be a string, number or boolean, got {raw!r}"
                if value is None
                else _problem(parameter, value)
            )
            if problem is not None:
                raise InvalidSpecError(
                    f"parameters.{name}",
                    problem,
                    f"Give a value of type {parameter.type.value}"
                    + (f" ({', '.join(parameter.enum)})" if parameter.enum else "")
                    + ".",
                    reason=REASON_INVALID_PARAMETER,
                )
            assert value is not None
            chosen[name] = value
    return chosen


def from_annotation(text: str | None, *, field: str) -> dict[str, Any] | None:
    """The run-now companion annotation: a JSON object of overrides (None: absent or empty)."""
    if not text:
        return None
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        raise InvalidSpecError(
            field,
            f"{text[:80]!r} is not a JSON object",
            'Write e.g. {"batch-size": "100"}.',
            reason=REASON_INVALID_PARAMETER,
        )
    return decoded


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``k=v`` strings (``--param k=v``) into a mapping; a missing ``=`` names the item."""
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidSpecError(
                f"--param {item}",
                "is not name=value",
                "Write --param name=value, e.g. --param batch-size=100.",
                reason=REASON_INVALID_PARAMETER,
            )
        result[name] = value
    return result


def env(declared: Sequence[Parameter], chosen: Mapping[str, str]) -> list[dict[str, str]]:
    """The ``env`` entries for ``chosen`` values, in declaration order."""
    return [
        {"name": parameter.env_name, "value": chosen.get(parameter.name, parameter.default)}
        for parameter in declared
    ]
