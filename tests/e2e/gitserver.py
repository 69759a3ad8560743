"""A git smart-HTTP server on loopback for the end-to-end tests.

Serves the bare repositories under a root folder through `git http-backend`
(CGI) and demands HTTP Basic authentication whose password equals the token;
anything else gets 401 with `WWW-Authenticate: Basic realm="x"`. With the
token None it serves anyone (public repositories).
"""

import base64
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"


def make_bare_repo(src_dir, bare_dir):
    """git init + commit src_dir, then clone --bare into bare_dir."""
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=os.path.dirname(
        os.path.abspath(bare_dir)))
    def git(*args, cwd=None):
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    git("init", "-q", "-b", "main", cwd=src_dir)
    git("add", "-A", cwd=src_dir)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m",
        "init", cwd=src_dir)
    git("clone", "-q", "--bare", src_dir, bare_dir)
    return bare_dir


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # keep pytest output clean
        self.server.requests_log.append(
            (self.command, self.path, self.headers.get("Authorization")))

    def _authorized(self):
        if self.server.token is None:       # a public server
            return True
        h = self.headers.get("Authorization", "")
        if not h.startswith("Basic "):
            return False
        try:
            user_pass = base64.b64decode(h[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        _, _, password = user_pass.partition(":")
        return password == self.server.token

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        body = self._read_body()
        if not self._authorized():
            self.server.denied += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        url = urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": self.server.root,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "t",
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.0",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        res = subprocess.run([GIT_HTTP_BACKEND], input=body, env=env,
                             capture_output=True, timeout=60)
        out = res.stdout
        sep = out.find(b"\r\n\r\n")
        skip = 4
        if sep < 0:
            sep, skip = out.find(b"\n\n"), 2
        if sep < 0:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        head, payload = out[:sep].decode("latin-1"), out[sep + skip:]
        status = 200
        headers = []
        for line in head.splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            else:
                headers.append((k.strip(), v.strip()))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.server.served += 1

    do_GET = _handle
    do_POST = _handle


class GitServer:
    """with GitServer(root, token) as gs: gs.url("alpha") ..."""

    def __init__(self, root, token):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.root = os.path.abspath(root)
        self.httpd.token = token
        self.httpd.denied = 0
        self.httpd.served = 0
        self.httpd.requests_log = []
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)

    def url(self, name):
        return f"http://127.0.0.1:{self.port}/{name}.git"

    @property
    def denied(self):
        return self.httpd.denied

    @property
    def served(self):
        return self.httpd.served

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
