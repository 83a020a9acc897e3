"""A small EC2 instance-metadata service (IMDSv2) on loopback that hands out one role's credentials.

`credentials` and `expires_in` may be changed while it runs: the next fetch gets the new ones, as
with EC2's rotation.
"""

import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


class MetadataServer:
    """Serves `role`'s credentials; records every path asked for."""

    def __init__(self, role: str, access_key: str, secret_key: str, token: str) -> None:
        self.role = role
        self.credentials = {"AccessKeyId": access_key, "SecretAccessKey": secret_key, "Token": token}
        self.expires_in = datetime.timedelta(hours=6)
        self.paths: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # IMDSv2 session token
                server.paths.append(self.path)
                self._reply(200, "imds-session-token" if self.path == "/latest/api/token" else "", "text/plain")

            def do_GET(self) -> None:
                server.paths.append(self.path)
                if self.path == CREDENTIALS_PATH:
                    self._reply(200, server.role, "text/plain")
                elif self.path == CREDENTIALS_PATH + server.role:
                    expires = datetime.datetime.now(datetime.UTC) + server.expires_in
                    body = {"Code": "Success", "Type": "AWS-HMAC", **server.credentials,
                            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
                    self._reply(200, json.dumps(body), "application/json")
                else:
                    self._reply(404, "not found", "text/plain")

            def _reply(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Shut the server down."""
        self._httpd.shutdown()
        self._httpd.server_close()
