"""Instagram messaging webhook: GET answers Meta's subscription check; POST verifies X-Hub-Signature-256,
enqueues every entry under the account it names, then answers EVENT_RECEIVED."""

from switchboard import edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.instagram import InstagramAdapter
from switchboard.lambda_entry import http

ADAPTER = InstagramAdapter()
DEPS = edge_deps()
handler = http(lambda request: edge.receive(ADAPTER, request, DEPS))
