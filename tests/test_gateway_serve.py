"""`gongji serve gateway` from the command line: it says what is missing, and it serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import _free_port


def test_serve_gateway_without_a_payment_address_says_so(tmp_path):
    command = [sys.executable, "-m", "services.cli", "serve", "gateway", "--insecure",
               "--database", f"sqlite:///{tmp_path}/gateway.db"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--payment-address missing" in result.stderr


def test_serve_gateway_answers_a_caller_without_credentials_401(tmp_path):
    port = _free_port()
    command = [sys.executable, "-m", "services.cli", "serve", "gateway", "--insecure", "--address",
               f"127.0.0.1:{port}", "--payment-address", "127.0.0.1:1", "--binding-address", "127.0.0.1:1",
               "--database", f"sqlite:///{tmp_path}/gateway.db",
               "--acct-pay-region", "440000=own-account-only"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/fsi/api/rsfComIfsService/callService", data=b"{}", method="POST"
            )
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as error:
                assert error.code == 401
                assert json.loads(error.read())["err_msg"].startswith("[UNAUTHENTICATED_CALLER]")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0
