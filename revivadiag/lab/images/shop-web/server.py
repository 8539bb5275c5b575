"""The shop's web server on PORT (3000): ``/`` is index.html with VITE_API_URL filled in,
``/healthz`` answers ok. HTTP/1.1 with keep-alive (the proxy may pool connections).

On SIGTERM (the image's stop signal) the listening socket closes at once (new connections are
refused: a proxy moves them to another server), requests in flight get SHUTDOWN_LAMEDUCK_S
seconds (default 1.0) to finish, then the process exits."""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open("/app/index.html", encoding="utf-8") as fh:
    # json.dumps()[1:-1]: the value as the inside of a JS string literal
    PAGE = fh.read().replace(
        "%VITE_API_URL%", json.dumps(os.environ.get("VITE_API_URL", ""))[1:-1]
    ).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "shop-web"

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, PAGE, "text/html; charset=utf-8")
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        print(f"web: {self.address_string()} {fmt % args}", flush=True)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "3000"))), Handler)
    server.daemon_threads = True

    def stop(_signum, _frame):
        # shutdown() waits for serve_forever to return: from another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    server.server_close()
    try:
        lameduck = min(max(float(os.environ.get("SHUTDOWN_LAMEDUCK_S", "1.0")), 0.0), 10.0)
    except ValueError:
        lameduck = 1.0
    time.sleep(lameduck)
