"""A Flask app behind the filter in tests/routes.rs: admin, public, item and report views.

Each view answers what it saw, as JSON: which view ran, the method and the path as Werkzeug
decoded them. Started as `python flask_app.py`; it binds an OS-chosen loopback port and
prints it as its first line.
"""
import json
import sys

from flask import Flask, request
from werkzeug.serving import WSGIRequestHandler, make_server

app = Flask(__name__)
ANY = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def seen(view):
    body = {
        "view": view,
        "method": request.method,
        "path": request.path,
        "query": request.query_string.decode("latin-1"),
        "principal": request.headers.get("x-auth-principal"),
    }
    return app.response_class(json.dumps(body), mimetype="application/json")


@app.route("/admin", methods=ANY)
@app.route("/admin/<path:rest>", methods=ANY)
def admin(rest=""):
    return seen("admin")


@app.route("/public/<path:rest>", methods=ANY)
def public(rest):
    return seen("public")


@app.route("/items/<item>", methods=["GET", "DELETE"])
def item(item):
    return seen("item-delete" if request.method == "DELETE" else "item")


@app.route("/reports/<name>")
def report(name):
    return seen("report")


@app.route("/", defaults={"rest": ""}, methods=ANY)
@app.route("/<path:rest>", methods=ANY)
def other(rest):
    return seen("other")


class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()
