"""Flask example for the Switchyard gateway: `gunicorn app:app`.

/                JSON: url_for() for itself and another route (relative and _external=True), script_root,
                 path, url, host, scheme, remote_addr
/hello/<name>    JSON greeting (the "other route" the index links to)
/stream?n=5&delay=0.1  streamed text, one line per chunk

The WSGI app is wrapped in werkzeug's ProxyFix trusting one proxy hop for X-Forwarded-For, -Proto, -Host
and -Prefix: when the gateway mounts this app at /flask over HTTP with the prefix stripped and sends
X-Forwarded-Prefix: /flask, url_for() answers /flask/... . That trust is right only behind a proxy that
drops client-sent copies of those headers (the gateway does); reached directly, clients could forge them.
"""
import time

from flask import Flask, Response, jsonify, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

app = Flask(__name__)


def _number(name, default, low, high, kind=int):
    try:
        value = kind(request.args.get(name, default))
    except ValueError:
        value = default
    return min(max(value, low), high)


@app.route("/")
def index():
    return jsonify(
        app="flask",
        url_for_index=url_for("index"),
        url_for_hello=url_for("hello", name="world"),
        url_for_hello_external=url_for("hello", name="world", _external=True),
        script_root=request.script_root,
        path=request.path,
        url=request.url,
        host=request.host,
        scheme=request.scheme,
        remote_addr=request.remote_addr,
    )


@app.route("/hello/<name>")
def hello(name):
    return jsonify({"app": "flask", "hello": name, "self": url_for("hello", name=name)})


@app.route("/stream")
def stream():
    n = _number("n", 5, 1, 1000)
    delay = _number("delay", 0.1, 0.0, 5.0, float)

    def chunks():
        for i in range(1, n + 1):
            if i > 1:
                time.sleep(delay)
            yield "chunk %d of %d\n" % (i, n)

    return Response(chunks(), mimetype="text/plain", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)
