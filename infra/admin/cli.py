"""The ``switchboard`` command (interface section 4).

Without ``--stack`` it talks to the local stack ``switchboard local`` started last; with
``--stack NAME`` to a deployed stack, found from its CloudFormation outputs.

What it prints for people is text a customer, a CRM or a platform wrote, so it passes through
:func:`escape` first: an ESC sequence in a customer's message must not recolour, retitle or rewrite
the admin's terminal, nor a bidi override reorder what they read. ``--json`` keeps every character
(as JSON escapes where a raw one could act on a terminal). A network failure is one line, not a
traceback (:func:`main`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from infra.admin.resources import Resources, TargetError
from switchboard import channels

# Characters that act on a terminal or reorder text rather than show: C0 and C1 controls and DEL,
# the line and paragraph separators, lone surrogates, and the bidirectional embeddings, overrides,
# isolates and marks (the "Trojan Source" set).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
# json.dumps escapes C0 controls itself; what it writes raw (and must not) is this, and only inside strings.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}"


def escape(text: str) -> str:
    """``text`` with every character that could act on a terminal shown as its escape (ESC as ``\\x1b``)."""
    return _UNSAFE.sub(_escaped, text)


def readable(value: Any) -> str:
    """A stored or remote value as one escaped line: ``-`` for nothing, ``key=value`` pairs for a mapping."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        if not value:
            return "-"
        return ", ".join(f"{escape(str(k))}={_nested(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_nested(v) for v in value) if value else "-"
    return escape(str(value))


def _nested(value: Any) -> str:
    if isinstance(value, dict) and value:
        return "{" + readable(value) + "}"
    if isinstance(value, list | tuple) and value:
        return "[" + readable(value) + "]"
    return readable(value)


def json_text(data: Any) -> str:
    """Lossless JSON for ``--json``: non-ASCII text stays readable, but no character that acts on a terminal is raw.

    ``json.dumps`` already escapes C0 controls; C1 controls, bidi controls and U+2028/2029 it would
    write raw. Outside strings JSON holds only ASCII, so replacing them everywhere is safe.
    """
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json.dumps(data, indent=2, ensure_ascii=False))


def _say(text: str, *, error: bool = False) -> None:
    print(escape(text), file=sys.stderr if error else sys.stdout)


def _yaml_text(data: Any) -> str:
    """YAML for people that is still the same data: a string holding an unsafe character is written double-quoted,
    with YAML's own escapes (``\\e``, ``\\u202E``), never raw."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def write_double_quoted(self, text: str, split: bool = True) -> None:
            unsafe = _UNSAFE.search(text) is not None
            allow, self.allow_unicode = self.allow_unicode, self.allow_unicode and not unsafe
            try:
                super().write_double_quoted(text, split)
            finally:
                self.allow_unicode = allow

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = '"' if _UNSAFE.search(value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True)


def _target(args: argparse.Namespace) -> Resources:
    if args.stack:
        return Resources.stack(args.stack, region=args.region, profile=args.profile)
    if args.region or args.profile:
        raise TargetError("--region and --profile choose where a deployed stack lives: give its --stack NAME too")
    return Resources.local()


def cmd_local(args: argparse.Namespace) -> int:
    from infra.admin.local import run

    return run(args.port, Path(args.config) if args.config else None)


def cmd_apply(args: argparse.Namespace) -> int:
    from infra.admin.apply import apply_file

    code, lines = apply_file(Path(args.file), _target(args), dry_run=args.dry_run, as_json=args.json)
    for row in lines:  # a CRM's refusal is the CRM's text; an unknown key is the file's
        if args.json and code != 2:
            print(row)  # the report as JSON (json.dumps' ASCII: nothing raw), lines and all
        else:
            _say(row, error=code == 2)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from infra.admin.apply import export

    data = export(_target(args))
    print(json_text(data) + "\n" if args.json else _yaml_text(data), end="")
    return 0


def _conversations(args: argparse.Namespace) -> Any:
    resources = _target(args)
    resources.activate()
    from switchboard.aws.conversation_store import DynamoConversations

    return DynamoConversations(resources.conversations_table)


def cmd_conversations_list(args: argparse.Namespace) -> int:
    from switchboard.conversations import summary_view

    now = int(time.time() * 1000)
    rows = [summary_view(c, now) for c in _conversations(args).recent(queue=args.queue, channel=args.channel, limit=args.limit)]
    if args.json:
        print(json_text(rows))
        return 0
    if not rows:
        print("no conversations")
        return 0
    print(f"{'CONVERSATION':<30} {'CHANNEL':<9} {'ACCOUNT':<16} {'CUSTOMER':<36} {'QUEUE':<12} {'STATUS':<7} UPDATED")
    for r in rows:
        customer = readable(r["customer"]["name"] or r["customer"]["id"])
        print(
            f"{readable(r['conversation_id']):<30} {readable(r['channel']):<9} {readable(r['account_id']):<16} "
            f"{customer:<36} {readable(r['queue']):<12} {readable(r['status']):<7} {readable(r['updated_at'])}"
        )
    return 0


def cmd_conversations_show(args: argparse.Namespace) -> int:
    from switchboard.conversations import public_view, transcript

    store = _conversations(args)
    conversation = store.get(args.id)
    if conversation is None:
        _say(f"no conversation {args.id}", error=True)
        return 1
    view = public_view(
        conversation,
        store.crm_state(args.id),
        transcript(store.messages(args.id), store.replies(args.id)),
        int(time.time() * 1000),
    )
    if args.json:
        print(json_text(view))
        return 0
    customer = view["customer"]
    named = f"{readable(customer['name'])} ({readable(customer['id'])})" if customer["name"] else customer["id"]
    shown = dict(view, customer=named)
    for key in ("conversation_id", "channel", "account_id", "customer", "authenticated", "contact_id", "context"):
        print(f"{key:>16}: {readable(shown[key])}")
    for key in ("workstream", "queue", "priority", "status", "crm"):
        print(f"{key:>16}: {readable(shown[key])}")
    print(f"{'messages':>16}:")
    for m in view["messages"]:
        if m["direction"] == "out":
            delivery = m["delivery"]
            state = readable(delivery["status"]) + (f" ({readable(delivery['error'])})" if delivery["error"] else "")
            by = f" by {readable(m['author'])}" if m["author"] else ""
            print(f"  {readable(m['written_at'])}  reply{by} [{state}] {escape(m['text'] or '')}")
            continue
        print(f"  {readable(m['sent_at'])}  {readable(m['kind']):<11} {escape(m['text'] or '')}")
        for a in m["attachments"]:
            size = f"{a['size']} bytes" if a.get("size") is not None else "size unknown"
            kept = readable(a.get("stored_key") or a.get("error") or "no bytes kept")
            print(f"      attachment {readable(a['type']):<8} {readable(a.get('name') or '-')}  {size}  {kept}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from infra.admin.send import send

    code, text = send(_target(args), args.channel, args.account, args.text, args.user, args.event_id)
    _say(text, error=code != 0)  # the answer's body is the gateway's (or whatever answers there) text
    return code


def cmd_schema(args: argparse.Namespace) -> int:
    from switchboard.config_schema import schema

    print(json.dumps(schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_dlq(args: argparse.Namespace) -> int:
    from infra.admin import dlq

    stages = (args.stage,) if args.stage else dlq.STAGES
    resources = _target(args)
    if args.action == "list":
        rows = dlq.list_dead_letters(resources, stages)
        if args.json:
            print(json_text(rows))
        elif not rows:
            print("no dead letters")
        else:
            for r in rows:  # the error is a CRM's or a platform's words
                where = f"conversation={readable(r['conversation_id'])}  attempts={readable(r['attempts'])}"
                print(f"{readable(r['stage']):<6} {readable(r['message_id'])}  {where}  {readable(r['error'])}")
        return 0
    moved = dlq.redrive(resources, stages)
    if args.json:
        print(json_text(moved))
    else:
        print(f"redrove {len(moved)} message(s)")
    return 0


def cmd_reply(args: argparse.Namespace) -> int:
    from infra.admin.reply import reply

    code, message_id, error = reply(_target(args), args.conversation_id, args.text)
    if code != 0:
        _say(error, error=True)
        return code
    print(json_text({"message_id": message_id}) if args.json else message_id)
    return 0


def cmd_auth_link(args: argparse.Namespace) -> int:
    from infra.admin.auth_link import link

    outcome = link(_target(args), args.conversation_id, args.auth_setting, valid_for=args.valid_for)
    for warning in outcome.warnings:
        _say(warning, error=True)
    _say(str(outcome.url if outcome.code == 0 else outcome.error), error=outcome.code != 0)
    return outcome.code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="Run, configure and inspect a Switchboard stack.")
    p.add_argument("--stack", help="a deployed stack's name (default: the local stack `switchboard local` started last)")
    p.add_argument("--region", help="the deployed stack's AWS region (default: AWS_DEFAULT_REGION or the profile's)")
    p.add_argument("--profile", help="the AWS profile whose credentials reach the deployed stack (default: as boto3 finds them)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("local", help="run the whole pipeline on this machine (moto, no AWS account)")
    s.add_argument("--port", type=int, default=3000, help="gateway port (default 3000; 0 picks a free one)")
    s.add_argument("--config", help="configuration file to apply at start (default: the demo configuration)")
    s.set_defaults(func=cmd_local)

    s = sub.add_parser("apply", help="validate and apply a configuration file")
    s.add_argument("file")
    s.add_argument("--dry-run", action="store_true", help="validate and report, write nothing")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_apply)

    s = sub.add_parser("export", help="print the stored configuration (secrets shown as <set>)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_export)

    conv = sub.add_parser("conversations", help="list or show conversations").add_subparsers(dest="action", required=True)
    s = conv.add_parser("list", help="conversations, newest first")
    s.add_argument("--json", action="store_true")
    s.add_argument("--queue")
    s.add_argument("--channel")
    s.add_argument("--limit", type=int, default=100)
    s.set_defaults(func=cmd_conversations_list)
    s = conv.add_parser("show", help="one conversation with its messages, routing and CRM ids")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_conversations_show)

    s = sub.add_parser("send", help="sign and post a realistic webhook as the platform would")
    s.add_argument("channel", choices=channels.names())
    s.add_argument("--account", required=True)
    s.add_argument("--text", required=True)
    s.add_argument("--user", help="the platform's customer id, as it names the sender (default: a stable demo customer)")
    s.add_argument("--event-id", help="the platform's own id of the event or message, to replay a delivery")
    s.set_defaults(func=cmd_send)

    s = sub.add_parser("schema", help="print the configuration file's JSON Schema (for editors and CI checks)")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("dlq", help="dead letters with their last error; redrive sends them back")
    s.add_argument("action", choices=["list", "redrive"])
    s.add_argument("--stage", choices=["route", "crm", "outbound"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dlq)

    s = sub.add_parser("reply", help="send a message to a conversation's customer through the outbound path")
    s.add_argument("conversation_id")
    s.add_argument("--text", required=True)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_reply)

    s = sub.add_parser("auth-link", help="print the sign-in URL to send a customer")
    s.add_argument("conversation_id")
    s.add_argument("--auth-setting", required=True)
    s.add_argument("--valid-for", type=int, default=None, help="seconds the link stays valid (default and most: link_minutes)")
    s.set_defaults(func=cmd_auth_link)
    return p


def network_error(exc: BaseException) -> str | None:
    """One line for a failure to reach AWS, the stack's API or a CRM; None for anything else (a bug: let it show)."""
    import botocore.exceptions

    from switchboard import outbound_http

    if isinstance(exc, outbound_http.TimedOut | outbound_http.ConnectionFailed):
        # Only scheme, host and port: the rest of a URL may carry a token.
        target = re.match(r"^[a-z]+://[^/?#]+", exc.target)
        where = f" {target.group(0)}" if target else ""
        if isinstance(exc, outbound_http.TimedOut):
            return f"cannot reach{where}: timed out"
        return f"cannot reach{where}: {outbound_http.os_reason(exc) or exc.reason.removeprefix('connection failed: ')}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return "no AWS credentials: configure them as boto3 finds them (AWS_PROFILE, ~/.aws, environment)"
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return "no AWS region: set AWS_REGION or a profile's region"
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        # Refused, DNS, TLS, proxy, connect and read timeouts, a connection closed mid-answer.
        endpoint = str(getattr(exc, "kwargs", {}).get("endpoint_url") or "the AWS endpoint")
        if isinstance(exc, botocore.exceptions.ReadTimeoutError):
            return f"{endpoint} did not answer in time"
        hint = " (is the local stack running? `switchboard local`)" if "127.0.0.1" in endpoint or "localhost" in endpoint else ""
        return f"cannot reach {endpoint}{hint}"
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"AWS refused: {error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, ConnectionError | TimeoutError):
        return f"network error: {exc.strerror or type(exc).__name__}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TargetError as exc:
        _say(f"switchboard: {exc}", error=True)
        return 1
    except Exception as exc:
        reason = network_error(exc)
        if reason is None:
            raise
        _say(f"switchboard: {reason}", error=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
