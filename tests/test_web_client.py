"""The web client in a real browser (Debian's Chromium, driven by Playwright) against the real
system: every service and worker as its own process, the gateway in front, real PostgreSQL and
Redis. Two people in two browser contexts: one follows the other, the other posts mentioning
the first, who sees the post arrive in the home timeline and the unread badge go up, live.

Without Chromium the test skips, unless REQUIRE_BROWSER=1 (as CI sets it) makes that a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from redis import Redis

from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.testing.helpers import free_port, service_environment, wait_for_health
from terrascale.common.testing.plugin import ServerAddresses, fresh_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # a whole system starts first

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
STARTUP_SECONDS = 90
# Fan-out, then the client's poll for newer posts (every 5 s): comfortably inside this.
LIVE_WITHIN_MS = 30_000


# (name, module, has a worker); the name is also the database's and the gateway's upstream's.
SERVICES = (
    ("user-service", "terrascale.users", False),
    ("graph-service", "terrascale.graph", True),
    ("post-service", "terrascale.posts", True),
    ("timeline-service", "terrascale.timelines", True),
    ("notification-service", "terrascale.notifications", True),
)


def chromium_path() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def gateway_url(
    test_servers: ServerAddresses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The whole system on free ports, once for this module; the gateway's base URL."""
    tmp_path = tmp_path_factory.mktemp("web")
    redis_key_prefix = f"test:{uuid.uuid4().hex[:12]}:"
    private_key = generate_private_key_pem()
    ports = {name: free_port() for name, _, _ in SERVICES}
    shared = {
        f"{name.replace('-', '_').upper()}_URL": f"http://127.0.0.1:{port}"
        for name, port in ports.items()
    }
    shared |= {
        "JWT_PUBLIC_KEY": public_key_pem(load_private_key(private_key)),
        "WEB_CONCURRENCY": "1",
        "DB_POOL_SIZE": "2",
    }
    log = (tmp_path / "system.log").open("wb")
    processes: list[subprocess.Popen[bytes]] = []

    def run(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(process)
        return process

    with ExitStack() as stack:
        stack.callback(log.close)
        stack.callback(forget_keys, test_servers, redis_key_prefix)
        environments: dict[str, dict[str, str]] = {}
        for name, _, _ in SERVICES:
            database = stack.enter_context(
                fresh_database(test_servers.postgres, prefix=f"test_web_{name[:5]}")
            )
            environments[name] = service_environment(
                database,
                test_servers,
                redis_key_prefix,
                **shared,
                PORT=str(ports[name]),
                # Each service its own cache keys (as their defaults are), one event backbone.
                CACHE_KEY_PREFIX=f"{redis_key_prefix}{name}:",
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / f"metrics-{name}"),
            )
        environments["user-service"]["JWT_PRIVATE_KEY"] = private_key
        stack.callback(stop_all, processes)  # before the databases are dropped
        # All at once, where the launcher goes one by one: start-up is mostly migrations.
        services = {
            name: run([sys.executable, "-m", module, "start"], environments[name])
            for name, module, _ in SERVICES
        }
        for name, process in services.items():
            wait_for_health(f"http://127.0.0.1:{ports[name]}", process, STARTUP_SECONDS)
        workers: dict[str, subprocess.Popen[bytes]] = {}
        for name, module, has_worker in SERVICES:
            if has_worker:  # once its service has migrated the database
                env = {
                    **environments[name],
                    "PORT": str(free_port()),
                    "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{name}-worker"),
                }
                workers[env["PORT"]] = run([sys.executable, "-m", module, "worker"], env)
        for port, process in workers.items():
            wait_for_health(f"http://127.0.0.1:{port}", process, STARTUP_SECONDS)
        gateway_port = free_port()
        upstreams = [f"--upstream={name}=http://127.0.0.1:{port}" for name, port in ports.items()]
        command = [sys.executable, "-m", "terrascale.launcher.gateway"]
        gateway = run([*command, "--port", str(gateway_port), *upstreams], dict(os.environ))
        base_url = f"http://127.0.0.1:{gateway_port}"
        wait_for_health(base_url, gateway, STARTUP_SECONDS)
        yield base_url


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def forget_keys(servers: ServerAddresses, prefix: str) -> None:
    client = Redis(host=servers.redis.host, port=servers.redis.port, db=servers.redis.db)
    with client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)


def sign_up(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/#/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_label("What's happening?")).to_be_visible()


def test_the_page_is_served_with_a_policy_that_forbids_inline_scripts(gateway_url: str) -> None:
    page = httpx.get(f"{gateway_url}/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
    unknown = httpx.get(f"{gateway_url}/no-such-file.js")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    api = httpx.get(f"{gateway_url}/users/by-username/nobody_here")
    assert api.status_code == 404
    assert api.json()["type"] == "urn:terrascale:problem:user-not-found"


def test_a_mention_reaches_a_follower_live_in_two_browsers(gateway_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    reader, writer = f"reader_{suffix}", f"writer_{suffix}"
    problems: list[str] = []

    def record(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=chromium_path())
        try:
            reading = browser.new_context(viewport={"width": 320, "height": 720}).new_page()
            writing = browser.new_context().new_page()
            for page in (reading, writing):
                page.on("console", record)
                page.on("pageerror", lambda error: problems.append(f"{error} {error.stack}"))
            sign_up(reading, gateway_url, reader)
            sign_up(writing, gateway_url, writer)

            # The reader follows the writer from the writer's profile, with the keyboard.
            reading.goto(f"{gateway_url}/#/u/{writer}")
            follow = reading.get_by_role("button", name="Follow", exact=True)
            follow.focus()
            reading.keyboard.press("Enter")
            expect(reading.get_by_role("button", name="Unfollow", exact=True)).to_be_visible()
            expect(reading.locator("#followers-count")).to_have_text("1")

            reading.get_by_role("link", name="Home").click()
            expect(reading.locator("#badge")).to_be_hidden()

            # The writer composes; the counter counts code points, not UTF-16 units.
            compose = writing.get_by_label("What's happening?")
            compose.fill("🙂")
            expect(writing.locator("#compose-count")).to_have_text("499")
            text = f"hello @{reader}, see https://example.com/docs #terrascale <b>not bold</b>"
            compose.fill(text)
            writing.get_by_role("button", name="Post").click()
            expect(writing.locator("ol.posts li").first).to_contain_text("hello")

            # The reader: the badge goes up over the live stream, the post waits behind the pill.
            expect(reading.locator("#badge")).to_have_text("1", timeout=LIVE_WITHIN_MS)
            reading.get_by_role("button", name=re.compile(r"Show 1 new post")).click(
                timeout=LIVE_WITHIN_MS
            )
            post = reading.locator("ol.posts li").first
            expect(post).to_contain_text("<b>not bold</b>")  # shown as text, not markup
            expect(post.get_by_role("link", name=f"@{reader}")).to_have_attribute(
                "href", f"#/u/{reader}"
            )
            link = post.get_by_role("link", name="https://example.com/docs")
            expect(link).to_have_attribute("rel", "noopener noreferrer nofollow ugc")
            expect(post.get_by_role("link", name="#terrascale")).to_be_visible()

            reading.get_by_role("link", name=re.compile("Notifications")).click()
            expect(reading.get_by_role("list", name="Notifications")).to_contain_text(
                f"@{writer} mentioned you"
            )
            expect(reading.locator("#badge")).to_be_hidden()

            # The writer deletes the post.
            writing.once("dialog", lambda dialog: dialog.accept())
            writing.get_by_role("button", name="Delete this post").first.click()
            expect(writing.locator("ol.posts li")).to_have_count(0)
        finally:
            browser.close()
    assert problems == []
