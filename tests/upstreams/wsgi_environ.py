"""A WSGI app on Python's wsgiref server that answers with the CGI environment it was given.

wsgiref, like every CGI/WSGI/PHP-style server, turns a request header into HTTP_<NAME> with
'-' replaced by '_', so `x-auth-principal` and `x_auth_principal` both become
HTTP_X_AUTH_PRINCIPAL (joined with ',' when both arrive). Prints its port once listening.
"""
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    body = json.dumps({
        "method": environ["REQUEST_METHOD"],
        "path": environ.get("PATH_INFO", ""),
        "environ": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
    }).encode()
    start_response("200 OK", [("content-type", "application/json"),
                              ("content-length", str(len(body)))])
    return [body]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
