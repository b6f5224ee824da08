"""CRM events: POST /crm/{provider}/events. Verify as the CRM signs, find the ticket's conversation, queue a read."""

from switchboard import crm_events
from switchboard.aws.wiring import crm_event_deps
from switchboard.lambda_entry import http

DEPS = crm_event_deps()
handler = http(lambda request: crm_events.handle(request, DEPS))
