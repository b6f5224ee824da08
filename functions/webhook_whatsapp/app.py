"""WhatsApp Cloud API webhook: GET answers Meta's subscription check; POST verifies X-Hub-Signature-256,
enqueues every change's messages and statuses, then answers EVENT_RECEIVED."""

from switchboard import edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.whatsapp import WhatsAppAdapter
from switchboard.lambda_entry import http

ADAPTER = WhatsAppAdapter()
DEPS = edge_deps()
handler = http(lambda request: edge.receive(ADAPTER, request, DEPS))
