"""Web chat sessions: the visitor's messages, the transcript's long poll, the end, CORS preflights, and the
widget's script and configuration (routes under /chat/{widget_id}/ beside the chat start).

The dependencies live at module level, so a warm container reuses its clients and the read script.
"""

from switchboard import chat_session
from switchboard.aws.chat_wiring import session_deps
from switchboard.lambda_entry import http

DEPS = session_deps()
handler = http(lambda request: chat_session.handle(request, DEPS))
