"""The configuration file's JSON Schema (draft 2020-12), assembled from the core and the plug-ins.

The core owns the shape of the file (the five sections, the common account settings, auth
settings, widgets, workstreams and their rules) and the shared ``$defs`` plug-ins refer to
(``#/$defs/url``, ``#/$defs/id``, ``#/$defs/secret``). Each channel (:mod:`switchboard.channels`)
and each CRM (:mod:`switchboard.crm.registry`) declares its own settings, secrets and rules; they
are read here and nowhere else, so the schema an editor checks the file with, the one
``switchboard schema`` prints and the one ``apply`` validates with are the adapters' own, and a
new channel or CRM needs no change here.

Accounts are discriminated by ``channel`` and the CRM section by ``provider`` (``if``/``then``
branches, so an error names the branch's own setting and editors complete the right names), and
each branch lists every setting it allows (``additionalProperties: false``): an unknown or
misspelt setting is refused, never silently ignored.

Where a message matters to a person reading ``apply``'s report, a schema carries ``errorMessage``
(a string; the YAML and JSON language servers show it too). It replaces the message of any check
the schema's own keywords make about the value itself (type, pattern, enum, ...), not the checks
about its members (required, unknown names).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any, Final

from switchboard import channels, rules
from switchboard.settings import DEFAULT_CLIENT_FUNCTION, DEFAULT_SESSION_MINUTES, ID_PATTERN, SESSION_MINUTES_RANGE

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SECTIONS: Final = ("accounts", "auth_settings", "widgets", "workstreams", "crm")
NO_CRM: Final = "none"  # the core's "no CRM": not a plug-in, so no settings and no secrets
LINK_MINUTES_RANGE: Final = (1, 1440)  # oauth2 `link_minutes`: how long a sign-in link stays valid

# https with a host; http only to a loopback host (tests, sandboxes, the local stack).
URL_PATTERN: Final = (
    r"^(?:https://(?:[^/?#@\s]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^/?#@\[\]\s:]+)"
    r"|http://(?:[^/?#@\s]*@)?(?:localhost|127(?:\.[0-9]{1,3}){3}|\[::1\]))"
    r"(?::[0-9]{0,5})?(?:[/?#]\S*)?$"
)
# A number as routing compares them (rules._number): digits, optional fraction and exponent.
_DIGITS = r"[0-9](?:_?[0-9])*"
NUMBER_TEXT_PATTERN: Final = rf"^\s*[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?\s*$"

URL_MESSAGE: Final = "must be an https URL (http only for 127.0.0.1 or localhost, for tests and sandboxes)"
ID_MESSAGE: Final = "must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
_NON_EMPTY: Final[dict[str, Any]] = {"type": "string", "pattern": r"\S", "errorMessage": "must be a non-empty string"}
_POSITIVE: Final[dict[str, Any]] = {"type": "integer", "minimum": 1, "errorMessage": "must be a positive whole number"}
_BOOL: Final[dict[str, Any]] = {"type": "boolean"}
_NUMERIC_OPS: Final = ("gt", "ge", "lt", "le")
ATTACHMENT_DEFAULTS: Final[dict[str, Any]] = {
    "max_bytes": 25 * 1024 * 1024,
    "extensions": ["jpg", "jpeg", "png", "gif", "webp", "heic", "pdf", "txt", "mp4", "mov", "m4a", "mp3", "aac", "wav", "ogg"],
}


def _ref(name: str, **extra: Any) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}", **extra}


def _shared_defs() -> dict[str, Any]:
    return {
        "url": {
            "type": "string",
            "pattern": URL_PATTERN,
            "errorMessage": URL_MESSAGE,
            "description": "An https URL; http only to 127.0.0.1, localhost or [::1] (tests, sandboxes).",
        },
        "id": {
            "type": "string",
            "pattern": ID_PATTERN.pattern,
            "errorMessage": ID_MESSAGE,
            "description": "1-64 letters, digits, '-', '_' or '.', starting with a letter or digit (it appears in URLs).",
        },
        "secret": {
            "type": "string",
            "errorMessage": "must be a string (literal, env:NAME or file:PATH)",
            "description": "A secret: the value itself, env:NAME (an environment variable) or file:PATH (a file in "
            "the configuration file's folder). Never empty or blank. Stored in Secrets Manager only.",
            "allOf": [{"pattern": r"\S", "errorMessage": "empty"}],
        },
        "attachments": {
            "type": "object",
            "description": "Limits on the attachments kept from this account's customers.",
            "properties": {
                "max_bytes": {**_POSITIVE, "default": ATTACHMENT_DEFAULTS["max_bytes"], "description": "Largest kept."},
                "extensions": {
                    "type": "array",
                    "errorMessage": "must be a list of file extensions",
                    "items": {"type": "string", "minLength": 1, "errorMessage": "must be a file extension"},
                    "default": ATTACHMENT_DEFAULTS["extensions"],
                    "description": "File extensions kept (case and a leading dot do not matter); others become unsupported.",
                },
            },
            "additionalProperties": False,
        },
    }


def _secrets_schema(required: Iterable[str], optional: Iterable[str], lists: Iterable[str] = ()) -> dict[str, Any]:
    required, optional, lists = tuple(required), tuple(optional), frozenset(lists)
    names = dict.fromkeys((*required, *optional))
    return {
        "type": "object",
        "errorMessage": "must be a mapping of secret names to values",
        "properties": {
            name: (
                {"type": "array", "minItems": 1, "items": _ref("secret"), "errorMessage": "must be a non-empty list"}
                if name in lists
                else _ref("secret")
            )
            for name in names
        },
        "required": list(required),
        "additionalProperties": False,
    }


def _branch(
    common: Iterable[str],
    settings: Mapping[str, Mapping[str, Any]],
    required_settings: Iterable[str],
    secrets: dict[str, Any],
    rules_: Iterable[Mapping[str, Any]],
    title: str,
) -> dict[str, Any]:
    """One plug-in's part of a discriminated object: its settings and secrets, and nothing else allowed."""
    required = list(required_settings)
    if secrets["required"]:
        required.append("secrets")
    branch: dict[str, Any] = {
        "title": title,
        "properties": {**dict.fromkeys(common, True), **{k: dict(v) for k, v in settings.items()}, "secrets": secrets},
        "required": required,
        "additionalProperties": False,
    }
    if rules_:
        branch["allOf"] = [dict(rule) for rule in rules_]
    return branch


def _when(key: str, value: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {key: {"const": value}}, "required": [key]}, "then": then}


_ACCOUNT_COMMON: Final[dict[str, Any]] = {
    "id": _ref("id", description="The account's id: the {account_id} of its webhook URL."),
    "channel": {},  # filled in from the registry
    "enabled": {**_BOOL, "default": True, "description": "false: its webhooks answer 404."},
    "name": {"type": "string", "description": "A name for people."},
    "workstream": {**_NON_EMPTY, "description": "The id of the workstream that routes its conversations."},
    "attachments": _ref("attachments"),
    "secrets": {"description": "The channel's secrets (see the channel's settings)."},
}


def _account() -> tuple[dict[str, Any], dict[str, Any]]:
    names = channels.names()
    common = {**_ACCOUNT_COMMON, "channel": {"enum": names, "description": "The messaging platform."}}
    branches: list[dict[str, Any]] = []
    defs: dict[str, Any] = {}
    for name in names:
        cls = channels.adapter_class(name)
        secrets = _secrets_schema(cls.required_secrets, cls.optional_secrets)
        defs[f"channel_{name}"] = _branch(
            common, cls.settings_schema, cls.required_settings, secrets, cls.schema_rules, cls.label
        )
        branches.append(_when("channel", name, _ref(f"channel_{name}")))
    account = {
        "type": "object",
        "description": "One messaging account on one of: "
        + ", ".join(f"{channels.adapter_class(n).label} ({n})" for n in names)
        + ".",
        "properties": common,
        "required": ["id", "channel", "workstream"],
        "allOf": branches,
    }
    return account, defs


def _crm() -> tuple[dict[str, Any], dict[str, Any]]:
    from switchboard.crm import registry

    names = registry.names()
    common = {
        "provider": {"enum": [NO_CRM, *names], "description": f"Which CRM ({NO_CRM}: none, records stay in Switchboard)."},
        "default_user": {
            "type": "object",
            "description": "Who owns the records no agent can be credited with.",
            "properties": {
                "enabled": {**_BOOL, "default": False, "description": "The admin user owns records no agent is credited with."},
                "always": {**_BOOL, "default": False, "description": "The admin user owns every record."},
            },
            "additionalProperties": False,
        },
        "replies": {
            **_BOOL,
            "default": True,
            "description": "Agents' public replies in the CRM reach the customer (false: nothing is sent).",
        },
        "secrets": {"description": "The CRM's credentials (see the provider's settings)."},
    }
    defs: dict[str, Any] = {"crm_none": _branch(common, {}, (), _secrets_schema((), ()), (), "No CRM")}
    branches = [_when("provider", NO_CRM, _ref("crm_none"))]
    for name in names:
        cls = registry.adapter_class(name)
        secrets = _secrets_schema(cls.required_secrets, cls.optional_secrets, cls.list_secrets)
        defs[f"crm_{name}"] = _branch(common, cls.settings_schema, cls.required_settings, secrets, cls.schema_rules, cls.label)
        branches.append(_when("provider", name, _ref(f"crm_{name}")))
    crm = {
        "type": ["object", "null"],
        "errorMessage": "must be a mapping",
        "description": "The CRM that contacts and tickets are written into.",
        "properties": common,
        "required": ["provider"],
        "allOf": branches,
    }
    return crm, defs


def _auth_setting() -> dict[str, Any]:
    common = {"id": _ref("id"), "type": {"enum": ["jwt", "oauth2"], "description": "How the customer's identity is proven."}}
    jwt = {
        "title": "JWT (chat authentication)",
        "properties": {
            **dict.fromkeys(common, True),
            "public_key_url": _ref("url", description="Returns one PEM public key, or a JSON array of keys with kid."),
            "issuer": {"type": "string", "description": "When set, a token's iss must equal it."},
            "client_function": {
                "type": "string",
                "pattern": r"^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$",
                "default": DEFAULT_CLIENT_FUNCTION,
                "errorMessage": 'must be a dotted path on window, like "auth.getAuthenticationToken"',
                "description": "The portal page's function the widget calls (with a callback) for the visitor's token.",
            },
        },
        "required": ["public_key_url"],
        "additionalProperties": False,
    }
    low, high = LINK_MINUTES_RANGE
    oauth2 = {
        "title": "OAuth 2.0 / OpenID Connect",
        "properties": {
            **dict.fromkeys(common, True),
            "token_url": _ref("url", description="Where the authorization code is exchanged."),
            "userinfo_url": _ref("url", description="Where the access token is sent as a bearer for the user's id."),
            "redirect_url": _ref("url", description="This setting's callback URL, as registered at the provider."),
            "authorize_url": _ref("url", description="The provider's authorization URL, for sign-in links."),
            "client_id": _NON_EMPTY,
            "scope": {"type": "string"},
            "user_id_claim": {"type": "string", "default": "sub", "description": "The userinfo claim holding the user id."},
            "token_endpoint_auth": {
                "enum": ["client_secret_post", "client_secret_basic"],
                "default": "client_secret_post",
                "description": "How the client authenticates at the token URL.",
            },
            "expiry_seconds": {**_POSITIVE, "default": 3600, "description": "How long the conversation stays signed in."},
            "additional_parameters": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "errorMessage": "must be a mapping of names to strings",
                "description": "Extra parameters sent to the token URL.",
            },
            "link_minutes": {
                "type": "integer",
                "minimum": low,
                "maximum": high,
                "default": 15,
                "errorMessage": f"must be a whole number from {low} to {high}",
                "description": "How long a sign-in link can be used (once).",
            },
            "secrets": _secrets_schema(("client_secret",), ()),
        },
        "required": ["token_url", "userinfo_url", "redirect_url", "client_id", "secrets"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": "How signed-in customers prove who they are.",
        "properties": common,
        "required": ["id", "type"],
        "allOf": [_when("type", "jwt", jwt), _when("type", "oauth2", oauth2)],
    }


def _widget() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A web chat widget.",
        "properties": {
            "id": _ref("id", description="The {widget_id} of the chat URLs."),
            "workstream": {**_NON_EMPTY, "description": "The id of the workstream that routes its conversations."},
            "auth_setting": {"type": "string", "description": "The id of the auth setting signed-in visitors use."},
            "allow_anonymous": {**_BOOL, "default": False, "description": "Visitors without a token may chat too."},
            "enabled": {**_BOOL, "default": True},
            "allowed_origins": {
                "type": "array",
                "items": {"type": "string", "pattern": r"^(\*|https?://[^/?#\s*]+)/?$"},
                "default": [],
                "errorMessage": 'must be a list of origins like "https://portal.example.com" (scheme and host), or "*"',
                "description": 'The pages that may call this chat from a browser (CORS), by origin; "*": any page.',
            },
            "session_minutes": {
                "type": "integer",
                "minimum": SESSION_MINUTES_RANGE[0],
                "maximum": SESSION_MINUTES_RANGE[1],
                "default": DEFAULT_SESSION_MINUTES,
                "errorMessage": f"must be a whole number from {SESSION_MINUTES_RANGE[0]} to {SESSION_MINUTES_RANGE[1]}",
                "description": "How long a visitor's session token lasts (it is not renewed).",
            },
            "ask_contact": {
                **_BOOL,
                "default": True,
                "description": "The widget asks an anonymous visitor for an optional name and e-mail before the chat.",
            },
        },
        "required": ["id", "workstream"],
        "additionalProperties": False,
    }


def _condition() -> dict[str, Any]:
    fields = sorted(rules.FIELDS)
    checks: list[dict[str, Any]] = [
        _when_op(sorted(rules.OPERATORS - {"exists"}), {"required": ["value"]}),
        _when_op(["in"], {"properties": {"value": {"type": "array", "errorMessage": "must be a list for op in"}}}),
        _when_op(
            sorted(rules.OPERATORS - {"in"}),
            {"properties": {"value": {"not": {"type": ["object", "array"]}, "errorMessage": "must be a single value"}}},
        ),
    ]
    for op in _NUMERIC_OPS:
        number = {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": NUMBER_TEXT_PATTERN}],
            "errorMessage": f"must be a number for op {op}",
        }
        checks.append(_when_op([op], {"properties": {"value": number}}))
    return {
        "type": "object",
        "properties": {
            "field": {
                "type": "string",
                "anyOf": [{"enum": fields}, {"pattern": r"^context\.[\s\S]"}],
                "errorMessage": f"must be one of {', '.join(fields)} or context.<variable>",
                "description": "What the condition looks at; context.<variable> for a chat's context variables.",
            },
            "op": {"enum": sorted(rules.OPERATORS), "errorMessage": f"must be one of {', '.join(sorted(rules.OPERATORS))}"},
            "value": {"description": "What the field is compared with (a list for in; a number for gt, ge, lt, le)."},
        },
        "required": ["field", "op"],
        "additionalProperties": False,
        "allOf": checks,
    }


def _when_op(ops: list[str], then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"op": {"enum": ops}}, "required": ["op"]}, "then": then}


def _workstream() -> dict[str, Any]:
    rule = {
        "type": "object",
        "description": "Ordered: the first rule whose conditions all hold decides.",
        "properties": {
            "name": {"type": "string"},
            "when": {
                "type": "array",
                "minItems": 1,
                "items": _ref("condition"),
                "errorMessage": "must be a non-empty list of conditions",
            },
            "queue": _NON_EMPTY,
            "priority": {**_POSITIVE, "default": 10, "description": "1 is highest."},
        },
        "required": ["when", "queue"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": "Routing: which queue and priority a conversation gets.",
        "properties": {
            "id": _ref("id"),
            "fallback_queue": {**_NON_EMPTY, "description": "The queue when no rule matches."},
            "close_after_minutes": {**_POSITIVE, "default": 1440, "description": "A quiet conversation closes after it."},
            "rules": {"type": "array", "items": rule},
        },
        "required": ["id", "fallback_queue"],
        "additionalProperties": False,
    }


def _section(kind: str, description: str) -> dict[str, Any]:
    return {"type": ["array", "null"], "errorMessage": "must be a list", "items": _ref(kind), "description": description}


@cache
def _cached() -> dict[str, Any]:
    account, channel_defs = _account()
    crm, crm_defs = _crm()
    return {
        "$schema": DIALECT,
        "title": "Switchboard configuration",
        "description": "The file `switchboard apply` reads (every section is optional).",
        "type": "object",
        "errorMessage": "must be a mapping with accounts, auth_settings, widgets, workstreams and crm",
        "properties": {
            "accounts": _section("account", "Messaging accounts: each platform's channel, page or agent is one account."),
            "auth_settings": _section("auth_setting", "How signed-in chat customers are identified."),
            "widgets": _section("widget", "Web chat widgets."),
            "workstreams": _section("workstream", "Routing: queues, priorities and rules."),
            "crm": crm,
        },
        "additionalProperties": False,
        "$defs": {
            **_shared_defs(),
            "account": account,
            "auth_setting": _auth_setting(),
            "widget": _widget(),
            "workstream": _workstream(),
            "condition": _condition(),
            **channel_defs,
            **crm_defs,
        },
    }


def schema() -> dict[str, Any]:
    """The whole configuration schema (a fresh copy: callers may change it)."""
    import copy

    return copy.deepcopy(_cached())


# -- validation ------------------------------------------------------------------------------------

Path = tuple[str | int, ...]
# Keywords about an object's members rather than the value itself: errorMessage does not replace them.
_MEMBER_KEYWORDS: Final = frozenset(
    {"required", "additionalProperties", "unevaluatedProperties", "dependentRequired", "propertyNames"}
)
_TYPE_WORDS: Final = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "null": "null",
}


@cache
def _validator() -> Any:
    """A draft 2020-12 validator with two fixes for how Python reads the schema.

    ``pattern`` is ECMA-262's: ``$`` ends the string (Python's ``$`` also matches before a final
    newline, which would let ``"tokyo\\n"`` pass as an id). ``integer`` is a whole number written as
    one: ``1.5`` and ``15.0`` are refused alike, as the code that reads them expects an int.
    """
    from jsonschema import Draft202012Validator, ValidationError, validators  # type: ignore[import-untyped]  # no stubs

    def pattern(validator: Any, patrn: str, instance: Any, schema: Mapping[str, Any]) -> Iterable[Any]:
        if validator.is_type(instance, "string") and not _ecma(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def is_integer(checker: Any, instance: Any) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer)
    cls = validators.extend(Draft202012Validator, validators={"pattern": pattern}, type_checker=checker)
    return cls(_cached())


@cache
def _ecma(patrn: str) -> re.Pattern[str]:
    if patrn.endswith("$") and not patrn.endswith("\\$"):
        patrn = patrn[:-1] + r"\Z"
    return re.compile(patrn)


def check(doc: Any) -> list[tuple[Path, str]]:
    """Every place ``doc`` breaks the schema, as (path, message), in no particular order.

    Paths name the offending setting itself: a missing setting's own path with ``required``, an
    unknown one's with ``unknown setting`` (``unknown secret`` under ``secrets``).
    """
    found: list[tuple[Path, str]] = []
    for error in _validator().iter_errors(doc):
        found.extend(_explain(error))
    found.extend(_non_finite(doc, ()))
    return list(dict.fromkeys(found))  # once each, first seen first


def _explain(error: Any) -> list[tuple[Path, str]]:
    path: Path = tuple(error.absolute_path)
    keyword = error.validator
    where: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "required":
        missing = [name for name in error.validator_value if isinstance(error.instance, dict) and name not in error.instance]
        out = []
        for name in missing:
            inner = where.get("properties", {}).get(name)
            names = inner.get("required") if isinstance(inner, Mapping) else None
            out.append(((*path, name), f"required ({', '.join(names)})" if names else "required"))
        return out
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        # Only `false` reports here (a subschema's own errors arrive with the member's path).
        what = "unknown secret" if path and path[-1] == "secrets" else "unknown setting"
        if keyword == "unevaluatedProperties" or not isinstance(error.instance, dict):
            return [(path, f"{what}: {error.message}")]
        allowed = set(where.get("properties", {}))
        patterns = [_ecma(p) for p in where.get("patternProperties", {})]
        extra = [
            k for k in error.instance if k not in allowed and not (isinstance(k, str) and any(p.search(k) for p in patterns))
        ]
        return [((*path, str(k)), what) for k in extra]  # a YAML key may be a number: named as written
    if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        path = (*path, error.instance)  # a bad key: name it
    message = where.get("errorMessage")
    if isinstance(message, str) and keyword not in _MEMBER_KEYWORDS:
        return [(path, message)]
    return [(path, _default(error))]


def _default(error: Any) -> str:
    keyword, value = error.validator, error.validator_value
    if keyword == "type":
        types = [value] if isinstance(value, str) else list(value)
        return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    if keyword == "enum":
        return "must be one of " + ", ".join(str(v) for v in value)
    if keyword == "const":
        return f"must be {value!r}"
    if keyword in ("minimum", "exclusiveMinimum"):
        return f"must be {'at least' if keyword == 'minimum' else 'more than'} {value}"
    if keyword in ("maximum", "exclusiveMaximum"):
        return f"must be {'at most' if keyword == 'maximum' else 'less than'} {value}"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if keyword == "maxLength":
        return f"must be at most {value} characters"
    if keyword == "minItems":
        return "must not be empty" if value == 1 else f"must have at least {value} items"
    if keyword == "maxItems":
        return f"must have at most {value} items"
    if keyword == "pattern":
        return f"must match the pattern {value}"
    if keyword in ("anyOf", "oneOf"):
        return "is none of the allowed forms"
    if keyword == "not":
        return "is not allowed here"
    return str(error.message)


def _non_finite(value: Any, path: Path) -> Iterable[tuple[Path, str]]:
    """Infinity and NaN (YAML's .inf and .nan): JSON has no such numbers, and no setting means them."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, "must be a finite number"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, index))
