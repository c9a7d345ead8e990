"""A WSGI app on Python's stdlib wsgiref server, behind the filter in tests/routes.rs.

It routes on the first segment of PATH_INFO, as wsgiref decodes it, and upper-cases the
method as frameworks do, and answers with the CGI variables it made of the headers. With `--ignore-case` it routes without regard to case, as Express
(by default), ASP.NET and IIS do. It binds an OS-chosen loopback port and prints it first.
"""
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from socketserver import ThreadingMixIn

IGNORE_CASE = "--ignore-case" in sys.argv


def app(environ, start_response):
    # PEP 3333: PATH_INFO holds the decoded bytes as latin-1; apps read them as UTF-8.
    path = environ["PATH_INFO"].encode("latin-1").decode("utf-8", "replace")
    method = environ["REQUEST_METHOD"].upper()
    segments = (path.lower() if IGNORE_CASE else path).split("/")
    first = segments[1] if len(segments) > 1 else ""
    view = {"admin": "admin", "public": "public", "items": "item", "reports": "report"}.get(first, "other")
    if view == "item" and method == "DELETE":
        view = "item-delete"
    body = json.dumps({
        "view": view,
        "method": method,
        "path": path,
        "query": environ.get("QUERY_STRING", ""),
        "principal": environ.get("HTTP_X_AUTH_PRINCIPAL"),
        # Every header as the app sees it: `x-a_b` and `x_a-b` are both HTTP_X_A_B here.
        "environ": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
    }).encode()
    start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(body)))])
    return [] if method == "HEAD" else [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, server_class=Threading, handler_class=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()
