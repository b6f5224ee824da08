"""The ``switchboard`` command (interface section 4).

Without ``--stack`` it talks to the local stack ``switchboard local`` started last; with
``--stack NAME`` to a deployed stack, found from its CloudFormation outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from infra.admin.resources import Resources, TargetError


def _target(args: argparse.Namespace) -> Resources:
    return Resources.stack(args.stack) if args.stack else Resources.local()


def cmd_local(args: argparse.Namespace) -> int:
    from infra.local.stack import run

    return run(args.port, Path(args.config) if args.config else None)


def cmd_apply(args: argparse.Namespace) -> int:
    from infra.admin.apply import apply_file

    code, lines = apply_file(Path(args.file), _target(args), dry_run=args.dry_run, as_json=args.json)
    stream = sys.stderr if code == 2 else sys.stdout
    for line in lines:
        print(line, file=stream)
    return code


def cmd_export(args: argparse.Namespace) -> int:
    import yaml

    from infra.admin.apply import export

    data = export(_target(args))
    print(json.dumps(data, indent=2) if args.json else yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
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
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no conversations")
        return 0
    print(f"{'CONVERSATION':<30} {'CHANNEL':<9} {'ACCOUNT':<16} {'CUSTOMER':<36} {'QUEUE':<12} {'STATUS':<7} UPDATED")
    for r in rows:
        customer = r["customer"]["name"] or r["customer"]["id"]
        print(
            f"{r['conversation_id']:<30} {r['channel']:<9} {r['account_id']:<16} {customer:<36} "
            f"{r['queue']:<12} {r['status']:<7} {r['updated_at']}"
        )
    return 0


def cmd_conversations_show(args: argparse.Namespace) -> int:
    from switchboard.conversations import message_view, public_view

    store = _conversations(args)
    conversation = store.get(args.id)
    if conversation is None:
        print(f"no conversation {args.id}", file=sys.stderr)
        return 1
    view = public_view(
        conversation,
        store.crm_state(args.id),
        [message_view(m) for m in store.messages(args.id)],
        int(time.time() * 1000),
    )
    if args.json:
        print(json.dumps(view, indent=2, ensure_ascii=False))
        return 0
    for key in ("conversation_id", "channel", "account_id", "customer", "authenticated", "contact_id", "context"):
        print(f"{key:>16}: {view[key]}")
    for key in ("workstream", "queue", "priority", "status", "crm"):
        print(f"{key:>16}: {view[key]}")
    print(f"{'messages':>16}:")
    for m in view["messages"]:
        print(f"  {m['sent_at']}  {m['kind']:<11} {m['text'] or ''}")
        for a in m["attachments"]:
            size = f"{a['size']} bytes" if a.get("size") is not None else "size unknown"
            kept = a.get("stored_key") or a.get("error") or "no bytes kept"
            print(f"      attachment {a['type']:<8} {a.get('name') or '-'}  {size}  {kept}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from infra.admin.send import send

    code, text = send(_target(args), args.channel, args.account, args.text, args.user, args.event_id)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def cmd_dlq(args: argparse.Namespace) -> int:
    from infra.admin import dlq

    stages = (args.stage,) if args.stage else dlq.STAGES
    resources = _target(args)
    if args.action == "list":
        rows = dlq.list_dead_letters(resources, stages)
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no dead letters")
        else:
            for r in rows:
                where = f"conversation={r['conversation_id']}  attempts={r['attempts']}"
                print(f"{r['stage']:<6} {r['message_id']}  {where}  {r['error']}")
        return 0
    moved = dlq.redrive(resources, stages)
    if args.json:
        print(json.dumps(moved, indent=2))
    else:
        print(f"redrove {len(moved)} message(s)")
    return 0


def cmd_auth_link(args: argparse.Namespace) -> int:
    from infra.admin.auth_link import link

    outcome = link(_target(args), args.conversation_id, args.auth_setting, valid_for=args.valid_for)
    for warning in outcome.warnings:
        print(warning, file=sys.stderr)
    print(outcome.url if outcome.code == 0 else outcome.error, file=sys.stdout if outcome.code == 0 else sys.stderr)
    return outcome.code


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard", description="Run, configure and inspect a Switchboard stack.")
    p.add_argument("--stack", help="a deployed stack's name (default: the local stack `switchboard local` started last)")
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
    s.add_argument("channel", choices=["line", "facebook", "gbm"])
    s.add_argument("--account", required=True)
    s.add_argument("--text", required=True)
    s.add_argument("--user", help="the platform's customer id (LINE userId, Facebook PSID, GBM conversationId)")
    s.add_argument(
        "--event-id",
        help="the platform's event id, to replay a delivery (LINE webhookEventId, Facebook mid, GBM messageId)",
    )
    s.set_defaults(func=cmd_send)

    s = sub.add_parser("dlq", help="dead letters with their last error; redrive sends them back")
    s.add_argument("action", choices=["list", "redrive"])
    s.add_argument("--stage", choices=["route", "crm"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_dlq)

    s = sub.add_parser("auth-link", help="print the sign-in URL to send a customer")
    s.add_argument("conversation_id")
    s.add_argument("--auth-setting", required=True)
    s.add_argument("--valid-for", type=int, default=86400, help="seconds the link stays valid (default 86400)")
    s.set_defaults(func=cmd_auth_link)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except TargetError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
