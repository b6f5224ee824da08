"""`switchboard apply` checks CRM credentials against the CRM before it stores them (interface section 3).

The check is the adapter's ``whoami``, whichever CRM the registry builds for the section (Zendesk
``users/me``, the Salesforce refresh-token grant and the org it belongs to, Dynamics' token and
``WhoAmI``, Kustomer's ``auth/tokens/current``); this module knows no CRM by name.
When the CRM refuses them (or cannot be reached to say yes), the CRM section keeps what was stored
before, secret included, and ``default_user.enabled`` is turned off until credentials the CRM
accepts are applied; the rest of the file is applied and ``apply`` exits 3. An unchanged CRM
section is not checked again, so a second apply of the same file makes no call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from switchboard.config import DesiredObject
from switchboard.crm.base import CrmConfigError, CrmError
from switchboard.crm.registry import build_adapter
from switchboard.settings import crm_from_dict

if TYPE_CHECKING:
    from switchboard.outbound_http import Session

EXIT_CRM_REFUSED = 3


@dataclass
class Verdict:
    obj: DesiredObject | None  # what to store: the file's section, the kept one, or nothing
    refused: str | None = None  # why the credentials were not accepted
    notices: list[str] = field(default_factory=list)  # e.g. a Salesforce refresh token that failed over
    checked: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_CRM_REFUSED if self.refused is not None else 0

    def report_rows(self, object_id: str) -> list[dict[str, str]]:
        """Lines for `apply`'s report, before the section's own created/updated/unchanged line."""
        rows = [{"kind": "crm", "id": object_id, "status": "notice", "message": n} for n in self.notices]
        if self.refused is not None:
            rows.append({"kind": "crm", "id": object_id, "status": "refused", "message": self.refused})
        return rows


def check_credentials(doc: Mapping[str, Any], secrets: Mapping[str, Any], *, session: Session | None = None) -> Verdict:
    """Ask the CRM who these credentials are; a Verdict with ``refused`` set says why not."""
    settings = crm_from_dict(dict(doc))
    try:
        adapter = build_adapter(settings, secrets, session=session)
    except (CrmConfigError, ValueError) as exc:
        return Verdict(obj=None, refused=f"credentials incomplete: {exc}", checked=True)
    try:
        adapter.whoami()
    except CrmError as exc:
        refused: str | None = exc.message
    else:
        refused = None
    notices = [n.message for n in adapter.drain_notices()]
    return Verdict(obj=None, refused=refused, notices=notices, checked=True)


def vet(
    obj: DesiredObject,
    current_doc: dict[str, Any] | None,
    current_secret: dict[str, Any] | None,
    *,
    session: Session | None = None,
) -> Verdict:
    """Decide what `apply` stores for the file's CRM section."""
    provider = obj.doc.get("provider")
    if obj.kind != "crm" or provider == "none":
        return Verdict(obj=obj)
    if current_doc == obj.doc and current_secret == obj.secrets:
        return Verdict(obj=obj)  # unchanged: already checked when it was stored
    verdict = check_credentials(obj.doc, obj.secrets or {}, session=session)
    if verdict.refused is None:
        verdict.obj = obj
        return verdict
    if current_doc is None:
        verdict.obj = None  # nothing stored before: nothing is stored now
        return verdict
    kept = dict(current_doc)
    kept["default_user"] = {**(current_doc.get("default_user") or {}), "enabled": False}
    verdict.obj = DesiredObject(kind="crm", id=obj.id, doc=kept, secrets=current_secret)
    return verdict


def report_text(prefix: str, row: Mapping[str, str]) -> str:
    """One line of `apply`'s text report; CRM notices and refusals carry their message."""
    text = f"{prefix}{row['status']:<9} {row['kind']} {row['id']}"
    return f"{text}: {row['message']}" if row.get("message") else text
