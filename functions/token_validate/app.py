"""Web chat start (POST /chat/{widget_id}/conversations) and the sign-in callback (GET /auth/{id}/callback).

The dependencies, and with them the cache of portals' public keys, live at module level: a warm
container validates tokens without fetching keys again.
"""

from switchboard import chat_start
from switchboard.aws.wiring import chat_deps
from switchboard.lambda_entry import http

DEPS = chat_deps()
handler = http(lambda request: chat_start.handle(request, DEPS))
