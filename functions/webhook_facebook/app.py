"""Facebook Messenger webhook: GET answers Meta's subscription check; POST verifies X-Hub-Signature-256,
enqueues every entry, then answers EVENT_RECEIVED."""

from switchboard import edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.facebook import FacebookAdapter
from switchboard.lambda_entry import http

ADAPTER = FacebookAdapter()
DEPS = edge_deps()
handler = http(lambda request: edge.receive(ADAPTER, request, DEPS))
