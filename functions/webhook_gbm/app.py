"""Google Business Messages webhook: the clientToken handshake, then X-Goog-Signature-verified messages, enqueued."""

from switchboard import edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.gbm import GbmAdapter
from switchboard.lambda_entry import http

ADAPTER = GbmAdapter()
DEPS = edge_deps()
handler = http(lambda request: edge.receive(ADAPTER, request, DEPS))
