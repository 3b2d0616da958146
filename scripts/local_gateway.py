#!/usr/bin/env python3
"""The local stand-in for API Gateway (scripts/run-local.sh starts it).

    CRM_JWT_SECRET=... python3 scripts/local_gateway.py --port 8080 \
        --upstream http://127.0.0.1:9000 [--mode router|lambda-url]

One origin for the browser, so the demo page needs no CORS:

- the contract's routes (`POST /docusign/consent`, `GET /docusign/callback`,
  `POST /docusign/envelopes`, `GET|DELETE /docusign/connection`) are passed on
  to `cargo lambda watch`, method, query, headers and body unchanged: with
  `--mode router` at the same path (cargo-lambda's router maps them, see
  scripts/cargo-lambda-local.toml), with `--mode lambda-url` at
  `/lambda-url/<function>/<path>`;
- `/demo/` serves the CRM demo page from demo/, `/favicon.ico` its icon;
- `/demo/config.json` holds the demo tenant's JWTs, DEVELOPMENT ONLY: minted
  here with CRM_JWT_SECRET by scripts/dev_jwt.py. The functions know nothing
  of it; a real CRM signs its own tokens.

Logs method and path only, never a query string (the callback's carries the
authorization code and state), header or body. Standard library only.
"""

import argparse
import datetime
import http.client
import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dev_jwt  # noqa: E402

ROUTES = {
    "/docusign/consent": "consent-start",
    "/docusign/consent/confirm": "consent-start",
    "/docusign/callback": "oauth-callback",
    "/docusign/envelopes": "send-envelope",
    "/docusign/connection": "connection",
}

HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade", "content-length",
}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".pdf": "application/pdf",
    ".json": "application/json",
}

DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# The tab's icon: browsers ask for /favicon.ico on every page of the origin.
FAVICON_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#ffcc22"/>'
    b'<path d="M4 3h4a5 5 0 0 1 0 10H4z" fill="#1d2330"/></svg>'
)

MAX_BODY = 7 * 1024 * 1024  # above the functions' 6 MB, so they answer 413 themselves


class Gateway:
    def __init__(self, args):
        up = urllib.parse.urlsplit(args.upstream)
        if up.scheme != "http" or not up.hostname:
            raise SystemExit("local_gateway.py: --upstream must be http://HOST:PORT")
        self.upstream_host = up.hostname
        self.upstream_port = up.port or 80
        self.mode = args.mode
        self.timeout = args.timeout
        self.demo_dir = os.path.realpath(args.demo_dir)
        self.tenant = args.tenant
        self.docusign = args.docusign
        self.secret = os.environ.get("CRM_JWT_SECRET", "")
        self.audience = os.environ.get("CRM_JWT_AUDIENCE") or dev_jwt.DEFAULT_AUDIENCE
        if not self.secret:
            raise SystemExit("local_gateway.py: CRM_JWT_SECRET is not set")

    def upstream_path(self, path, query):
        if self.mode == "lambda-url":
            target = "/lambda-url/%s%s" % (ROUTES[path], path)
        else:
            target = path
        return target + ("?" + query if query else "")

    def demo_config(self):
        ttl = 12 * 3600
        expires = datetime.datetime.fromtimestamp(time.time() + ttl, datetime.timezone.utc)
        tokens = {
            role: dev_jwt.mint(self.secret, self.tenant, "demo-" + role, role, self.audience, ttl)
            for role in ("admin", "user")
        }
        return {
            "DEVELOPMENT_ONLY": "These tokens are minted by the local tooling "
            "(scripts/local_gateway.py, scripts/dev_jwt.py) for a demo tenant. "
            "A real CRM signs its own tokens and never serves them like this.",
            "tenant": self.tenant,
            "users": {role: "demo-" + role for role in tokens},
            "tokens": tokens,
            "tokens_expire_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "docusign": self.docusign,
        }


def make_handler(gw):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "local-gateway"

        # ---- plumbing ------------------------------------------------------
        def log_message(self, fmt, *args):  # the default logs the full request line
            pass

        def log_request(self, code="-", size="-"):
            path = urllib.parse.urlsplit(self.path).path
            sys.stderr.write("gateway: %s %s -> %s\n" % (self.command, path, code))

        def reply(self, status, body=b"", headers=()):
            self.send_response(status)
            sent = set()
            for name, value in headers:
                self.send_header(name, value)
                sent.add(name.lower())
            if "cache-control" not in sent:
                self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def reply_json(self, status, value, headers=()):
            body = json.dumps(value, indent=2).encode("utf-8")
            self.reply(status, body, [("Content-Type", "application/json")] + list(headers))

        def error(self, status, code, message):
            self.reply_json(status, {"error": {"code": code, "message": message}})

        # ---- dispatch ------------------------------------------------------
        def handle_any(self):
            url = urllib.parse.urlsplit(self.path)
            path = url.path
            if path in ROUTES:
                return self.proxy(path, url.query)
            if self.command not in ("GET", "HEAD"):
                return self.error(405, "method_not_allowed", "the gateway serves only GET here")
            if path == "/":
                return self.reply(302, headers=[("Location", "/demo/")])
            if path == "/favicon.ico":
                return self.reply(200, FAVICON_SVG, [("Content-Type", "image/svg+xml"),
                                                     ("Cache-Control", "max-age=86400")])
            if path == "/healthz":
                return self.reply(200, b"ok\n", [("Content-Type", "text/plain")])
            if path == "/demo":
                return self.reply(302, headers=[("Location", "/demo/")])
            if path == "/demo/config.json":
                return self.reply_json(200, gw.demo_config())
            if path.startswith("/demo/"):
                return self.static(path[len("/demo/"):] or "index.html")
            return self.error(404, "not_found", "no route %s %s" % (self.command, path))

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any

        def static(self, name):
            file = os.path.realpath(os.path.join(gw.demo_dir, urllib.parse.unquote(name)))
            ext = os.path.splitext(file)[1]
            if (not file.startswith(gw.demo_dir + os.sep) or ext not in CONTENT_TYPES
                    or not os.path.isfile(file)):
                return self.error(404, "not_found", "no such demo file")
            with open(file, "rb") as f:
                body = f.read()
            self.reply(200, body, [
                ("Content-Type", CONTENT_TYPES[ext]),
                ("Content-Security-Policy", DEMO_CSP),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ])

        def proxy(self, path, query):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self.error(413, "payload_too_large", "request body over %d bytes" % MAX_BODY)
            body = self.rfile.read(length) if length else None
            headers = {}
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    headers[name] = value
            headers["X-Forwarded-For"] = self.client_address[0]
            headers["X-Forwarded-Proto"] = "http"
            if body is not None:
                headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(gw.upstream_host, gw.upstream_port, timeout=gw.timeout)
            try:
                conn.request(self.command, gw.upstream_path(path, query), body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                return self.error(502, "gateway_error",
                                  "cargo lambda watch did not answer (%s); see its log" % type(e).__name__)
            finally:
                conn.close()
            self.send_response(status)
            for name, value in out:
                if name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description="local API Gateway stand-in and demo page server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="cargo lambda watch, e.g. http://127.0.0.1:9000")
    p.add_argument("--mode", choices=("router", "lambda-url"), default="router")
    p.add_argument("--demo-dir", default=os.path.join(root, "demo"))
    p.add_argument("--tenant", default="demo-tenant")
    p.add_argument("--docusign", default="", help="what the demo page says DocuSign is")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds to wait for a function (the first call may compile it)")
    args = p.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Gateway(args)))
    server.daemon_threads = True
    print("local gateway listening on http://%s:%d" % (args.host, args.port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
