"""A tiny logging proxy: /<case>/v1/... is forwarded to UPSTREAM/v1/... and logged as one JSON line.

usage: logproxy.py PORT UPSTREAM LOGFILE   (stdlib only; streams SSE through as it arrives)
"""

import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PORT, UPSTREAM, LOGFILE = int(sys.argv[1]), urlsplit(sys.argv[2]), sys.argv[3]
HOP = {"connection", "keep-alive", "transfer-encoding", "host", "accept-encoding", "content-length"}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def forward(self):
        _, case, path = self.path.split("/", 2)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        upstream = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
        upstream.request(self.command, "/" + path, body=body, headers=headers)
        reply = upstream.getresponse()
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        seen = b""
        while chunk := reply.read1(65536):
            seen += chunk
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        upstream.close()
        entry = {
            "case": case,
            "request": f"{self.command} /{path}",
            "status": reply.status,
            "request_body": body.decode(errors="replace"),
            "response_body": seen.decode(errors="replace"),
        }
        with lock, open(LOGFILE, "a") as log:
            log.write(json.dumps(entry) + "\n")


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
