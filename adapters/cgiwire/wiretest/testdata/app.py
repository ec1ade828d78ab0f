"""WSGI test app for the uwsgi and SCGI adapter tests (run by a real uWSGI).

GET/POST anything      -> JSON report of the environ: SCRIPT_NAME, PATH_INFO, REQUEST_URI, wsgi.url_scheme,
                          every HTTP_* and UWSGI_* variable, the body's length and sha256, and the URLs
                          wsgiref builds (application_uri, request_uri) to prove mount-aware URL generation.
/stream?n=N&gate=FIFO  -> N chunks "chunk-i\n"; after the first, blocks until the test closes its end of the
                          FIFO at path `gate` (the test's signal), then sends the rest. &declare=1 sends
                          Content-Length for the whole body up front.
/slow?s=SECONDS        -> sleeps, then answers.
"""
import hashlib
import json
import time
from urllib.parse import parse_qs
from wsgiref.util import application_uri, request_uri


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/stream":
        return stream(q, start_response)
    if path == "/slow":
        time.sleep(float(q.get("s", "5")))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow\n"]
    return report(environ, start_response)


def stream(q, start_response):
    n = int(q.get("n", "3"))
    chunks = [("chunk-%d\n" % i).encode() for i in range(n)]
    headers = [("Content-Type", "text/plain")]
    if q.get("declare"):
        headers.append(("Content-Length", str(sum(len(c) for c in chunks))))
    start_response("200 OK", headers)

    def gen():
        # The gate is a FIFO the test holds open: open it before sending anything (so the open cannot
        # race the test closing its end), then read() returns once the test closes it.
        gate = open(q["gate"], "rb") if q.get("gate") else None
        yield chunks[0]
        if gate:
            with gate:
                gate.read()
        for c in chunks[1:]:
            yield c

    return gen()


def report(environ, start_response):
    h = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while True:
        b = inp.read(65536)
        if not b:
            break
        h.update(b)
        n += len(b)
    keys = ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REQUEST_URI", "REQUEST_METHOD", "CONTENT_LENGTH",
            "CONTENT_TYPE", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTPS"]
    out = {k: environ.get(k) for k in keys}
    out["wsgi.url_scheme"] = environ.get("wsgi.url_scheme")
    out["vars"] = {k: v for k, v in environ.items()
                   if isinstance(v, str) and (k.startswith("HTTP_") or k.startswith("UWSGI_") or k.startswith("X_"))}
    out["body_len"] = n
    out["body_sha256"] = h.hexdigest()
    out["application_uri"] = application_uri(environ)
    out["request_uri"] = request_uri(environ)
    body = json.dumps(out, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                              ("X-App", "report")])
    return [body]
