"""LINE webhook: POST /webhooks/line/{account_id}. Verify X-Line-Signature, normalise, enqueue, then answer 200."""

from switchboard import edge
from switchboard.aws.wiring import edge_deps
from switchboard.channels.line import LineAdapter
from switchboard.lambda_entry import http

ADAPTER = LineAdapter()
DEPS = edge_deps()
handler = http(lambda request: edge.receive(ADAPTER, request, DEPS))
