"""httpkit: the lean HTTP/1.1 server both weedpy daemons run on (uvloop + httptools/llhttp).

    router = Router()
    router.add("/healthz", lambda req: Response(200), ["GET"])
    router.fallback(blob_handler)               # fid-shaped paths; sorts out methods itself
    server = HttpServer(router, Limits(max_body=256 << 20), server_header="weedpy")
    await server.start("127.0.0.1", 0)          # server.port is the bound port
    ...
    await server.stop(grace=5.0)

Handlers take a `Request` and return a `Response` (or an awaitable of one, or a `Later` that
another part of the server gives from the loop's thread). Raising a
`WeedError` answers `{"error": ...}` with its status; any other exception answers 500 and logs.
"""

from seaweed_py.httpkit.later import Later
from seaweed_py.httpkit.limits import Limits
from seaweed_py.httpkit.request import Request, RequestStream
from seaweed_py.httpkit.response import (
    JSON_HEADERS,
    Response,
    error_response,
    json_response,
)
from seaweed_py.httpkit.router import Handler, Route, Router
from seaweed_py.httpkit.run import run_servers, serve_until_signalled
from seaweed_py.httpkit.server import HttpServer

__all__ = [
    "JSON_HEADERS",
    "Handler",
    "HttpServer",
    "Later",
    "Limits",
    "Request",
    "RequestStream",
    "Response",
    "Route",
    "Router",
    "error_response",
    "json_response",
    "run_servers",
    "serve_until_signalled",
]
