"""End-to-end check of the README's start command, as a new user would run it.

Starts ``python3 dev.py up`` on a fresh data folder (embedded PostgreSQL and Valkey), waits for
every service, puts the compose file's nginx gateway configuration in front of them, and plays
the social flow through it: two sign-ups and sign-ins, a follow, a post with a mention and a
hashtag, then the follower list, the user timeline, the post, the follower's home timeline, both
users' notifications and the live notification stream. Schemathesis then fuzzes each service's
OpenAPI document, signed in. Finally it presses Ctrl-C and checks nothing is left running.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PORTS = {
    "user-service": 5000,
    "graph-service": 5001,
    "post-service": 5002,
    "timeline-service": 5003,
    "notification-service": 5004,
}
EXCLUDED_CHECKS = {"post-service": ["--exclude-checks", "ensure_resource_availability"]}


def call(
    base: str,
    method: str,
    path: str,
    *,
    json_body: object = None,
    form: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {}
    data = None
    if json_body is not None:
        data, headers["content-type"] = json.dumps(json_body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_until_ready(
    process: subprocess.Popen[bytes],
    timeout: float,
    ports: dict[str, int] = SERVICE_PORTS,
    path: str = "/ready",
) -> float:
    started = time.monotonic()
    pending = dict(ports)
    while pending and time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise SystemExit("smoke: the start command exited early")
        for name, port in list(pending.items()):
            try:
                if call(f"http://127.0.0.1:{port}", "GET", path)[0] == 200:
                    del pending[name]
            except (urllib.error.URLError, ConnectionError):
                pass
        time.sleep(0.5)
    if pending:
        raise SystemExit(f"smoke: not ready: {', '.join(pending)}")
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The compose gateway's nginx.conf, pointed at this machine's services."""
    config = (ROOT / "deploy" / "gateway" / "nginx.conf").read_text()
    for name, port in SERVICE_PORTS.items():
        config = config.replace(f"server {name}:{port};", f"server 127.0.0.1:{port};")
    port = free_port()
    config = config.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    config = re.sub(r"pid [^;]+;", f"pid {workdir / 'nginx.pid'};", config)
    config = config.replace("root /usr/share/nginx/html;", f"root {ROOT / 'web' / 'dist'};")
    (workdir / "nginx.conf").write_text(config)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    subprocess.run([nginx, "-t", "-q", "-c", str(workdir / "nginx.conf")], check=True)
    process = subprocess.Popen(
        [nginx, "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(50):
        try:
            if call(base, "GET", "/health")[0] == 200:
                return process, base
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise SystemExit("smoke: the gateway did not start")


def check_web_client(base: str) -> None:
    """The built web client at ``/``: its page under a policy that allows no inline script,
    and its script served as JavaScript (a browser refuses a module script otherwise)."""
    with urllib.request.urlopen(base + "/", timeout=10) as response:
        page = response.read().decode()
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
    script = re.search(r'<script type="module" crossorigin src="([^"]+)"', page)
    assert script, "smoke: the page loads no script"
    with urllib.request.urlopen(base + script.group(1), timeout=10) as response:
        assert "javascript" in response.headers["content-type"]
    print(f"smoke: the web client is served at {base}/", flush=True)


def eventually(check: Any, what: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"smoke: {what} did not happen within {seconds}s"
            return result
        time.sleep(0.1)


def first_stream_event(base: str, token: str) -> dict[str, str]:
    """The first event of the live notification stream, resumed from the start."""
    url = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    connection.request(
        "GET",
        "/notifications/stream",
        headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "0"},
    )
    response = connection.getresponse()
    assert response.status == 200, response.status
    assert response.headers["content-type"].startswith("text/event-stream")
    event: dict[str, str] = {}
    try:
        while line := response.readline().decode().rstrip("\r\n"):
            field, _, value = line.partition(":")
            event[field] = value.strip()
    finally:
        connection.close()
    return event


def social_flow(base: str) -> str:
    """Plays the flow through the gateway; returns an access token for the fuzzers."""
    suffix = uuid.uuid4().hex[:8]
    ada, bob = f"ada_{suffix}", f"bob_{suffix}"
    ids, tokens = {}, {}
    for name in (ada, bob):
        status, body = call(
            base, "POST", "/users/", json_body={"username": name, "password": "pw-" + suffix}
        )
        assert status == 201, (status, body)
        ids[name] = body["id"]
        status, body = call(
            base, "POST", "/auth/token", form={"username": name, "password": "pw-" + suffix}
        )
        assert status == 200, (status, body)
        tokens[name] = body["access_token"]

    status, body = call(base, "PUT", f"/users/{ids[ada]}/following/{ids[bob]}", token=tokens[ada])
    assert status == 200, (status, body)
    assert body["following"] is True, body

    # Mentions resolve against the post service's copy of the users, filled by user.created
    # events a moment after sign-up: until Ada's has arrived, "@ada" stays plain text.
    def post_mentioning_ada() -> tuple[int, Any] | None:
        status, post = call(
            base,
            "POST",
            "/posts",
            json_body={"text": f"hello @{ada} #terrascale"},
            token=tokens[bob],
        )
        assert status == 201, (status, post)
        return (status, post) if post["mentions"] else None

    started = time.monotonic()
    _, post = eventually(post_mentioning_ada, "mention resolution")
    print(
        f"smoke: mentions resolved {time.monotonic() - started:.2f}s after the follow", flush=True
    )
    assert [m["user_id"] for m in post["mentions"]] == [ids[ada]], post
    assert post["hashtags"] == ["terrascale"], post

    status, followers = call(base, "GET", f"/users/{ids[bob]}/followers")
    assert status == 200, followers
    assert [item["user_id"] for item in followers["items"]] == [ids[ada]], followers
    status, timeline = call(base, "GET", f"/users/{ids[bob]}/posts")
    assert status == 200, timeline
    assert timeline[0]["id"] == post["id"], timeline
    assert call(base, "GET", f"/posts/{post['id']}")[0] == 200
    status, cached = eventually(
        lambda: (r := call(base, "GET", f"/users/{ids[ada]}")) and r[1]["cached"] and r,
        "a cached user read",
    )
    assert status == 200, cached
    assert cached["username"] == ada, cached

    # Earlier attempts above posted too (before the mention resolved): wait for this post.
    def home_with_post() -> list[Any] | None:
        status, page = call(base, "GET", "/timelines/home", token=tokens[ada])
        assert status == 200, page
        return page if page and page[0]["id"] == post["id"] else None

    started = time.monotonic()
    home = eventually(home_with_post, "the post in the follower's home timeline")
    print(f"smoke: post in the home timeline after {time.monotonic() - started:.2f}s", flush=True)
    assert home[0]["author"]["username"] == bob, home
    _, mentions = eventually(
        lambda: (r := call(base, "GET", "/notifications", token=tokens[ada])) and r[1] and r,
        "the mention notification",
    )
    assert (mentions[0]["kind"], mentions[0]["post_id"]) == ("mention", post["id"]), mentions
    _, follows = eventually(
        lambda: (r := call(base, "GET", "/notifications", token=tokens[bob])) and r[1] and r,
        "the follow notification",
    )
    assert (follows[0]["kind"], follows[0]["actor_id"]) == ("follow", ids[ada]), follows
    event = first_stream_event(base, tokens[ada])
    assert event["event"] == "notification", event
    assert json.loads(event["data"])["post_id"] == post["id"], event
    print(
        "smoke: sign-up, sign-in, follow, post, followers, timelines, notifications and the "
        "live stream: through the gateway"
    )
    return tokens[ada]


def schemathesis_command(name: str, port: int, token: str) -> list[str]:
    """Each service's schemathesis.toml declares the answers its schema cannot express."""
    command = ["uv", "run", "--frozen", "schemathesis"]
    config = ROOT / "services" / name / "schemathesis.toml"
    if config.exists():
        command += ["--config-file", str(config)]
    command += ["run", f"http://127.0.0.1:{port}/openapi.json", "--checks", "all"]
    command += ["--max-examples", "50", "--seed", "1"]
    command += ["--header", f"Authorization: Bearer {token}"]
    # Explained in the post service's schemathesis.toml (a CLI list overrides the file's).
    return command + EXCLUDED_CHECKS.get(name, [])


def leftover_processes(marker: str) -> list[str]:
    found = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in found.stdout.splitlines() if marker in line]


def port_is_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    # Something else answering on these ports would be tested instead of what we start.
    if taken := [name for name, port in SERVICE_PORTS.items() if port_is_taken(port)]:
        raise SystemExit(f"smoke: the ports of {', '.join(taken)} are already in use")
    data_dir = Path(tempfile.mkdtemp(prefix="terrascale-smoke-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("POSTGRES_", "REDIS_", "DATABASE_URL", "JWT_"))
    }
    # Schemathesis sends hundreds of sign-ups and writes a minute from one address with one
    # token: the rate limits (tested in tests/test_security.py) would answer its checks 429.
    env |= {"RATE_LIMIT_WRITES_PER_MINUTE": "0", "RATE_LIMIT_SIGNIN_PER_MINUTE": "0"}
    web_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "dev.py",
            "up",
            "--data-dir",
            str(data_dir),
            "--gateway-port",
            str(web_port),
        ],
        cwd=ROOT,
        env=env,
    )
    gateway = None
    try:
        seconds = wait_until_ready(process, timeout=180)
        print(f"smoke: every service ready {seconds:.1f}s after the start command", flush=True)
        gateway, base = start_gateway(data_dir)
        token = social_flow(base)
        check_web_client(base)
        # The start command's own gateway starts after the workers: it may still be starting.
        wait_until_ready(process, timeout=60, ports={"the start gateway": web_port}, path="/health")
        check_web_client(f"http://127.0.0.1:{web_port}")
        for name, port in SERVICE_PORTS.items():
            print(f"smoke: schemathesis against {name}", flush=True)
            subprocess.run(schemathesis_command(name, port, token), cwd=ROOT, check=True)
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=10)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=90)
    time.sleep(1)
    leftovers = leftover_processes(str(data_dir))
    assert code == 0, f"start command exited with {code}"
    assert not leftovers, f"processes left running: {leftovers}"
    print("smoke: Ctrl-C stopped everything", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
