"""Takes the README's screenshots of the web client (docs/web-home.png, docs/web-notifications.png)
against a running system, after giving it a little realistic data through the public API.

    python3 dev.py up                        # in one terminal
    uv run python web/scripts/screenshots.py # in another; --base-url for another gateway

Needs Debian's Chromium (apt-get install chromium). Run it against a fresh data folder: the
accounts it makes must not exist yet.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

DOCS = Path(__file__).resolve().parents[2] / "docs"
PASSWORD = "analytical engine"  # noqa: S105 - the demo accounts' password, shown in the docs
PEOPLE = {
    "ada_lovelace": ("Ada Lovelace", "Poetical science. Notes on the Analytical Engine."),
    "charles_babbage": ("Charles Babbage", "Difference engines, calculating machines, tea."),
    "grace_hopper": ("Grace Hopper", "It's easier to ask forgiveness than to get permission."),
    "alan_turing": ("Alan Turing", "Can machines think? Also: long-distance running."),
}
# (author, text), oldest first; mentions resolve once the Post Service has heard of the user.
POSTS = (
    ("charles_babbage", "The Difference Engine No. 2 drawings are done. #engines"),
    ("grace_hopper", "Found the first actual bug today: a moth in relay 70. #debugging"),
    ("alan_turing", "New paper on computable numbers: https://example.org/on-computable-numbers"),
    ("charles_babbage", "@ada_lovelace your notes are longer than my paper, and better. #engines"),
    ("grace_hopper", "A ship in port is safe, but that's not what ships are built for."),
    ("alan_turing", "@ada_lovelace did you really say the Engine can't originate anything? #ai"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with httpx.Client(base_url=args.base_url, timeout=10) as api:
        tokens = {name: sign_up(api, name) for name in PEOPLE}
        for name, (display_name, bio) in PEOPLE.items():
            profile = {"display_name": display_name, "bio": bio}
            api.patch("/users/me", json=profile, headers=tokens[name]).raise_for_status()
        ids = {name: api.get(f"/users/by-username/{name}").json()["id"] for name in PEOPLE}
        for follower, followee in (
            ("ada_lovelace", "charles_babbage"),
            ("ada_lovelace", "grace_hopper"),
            ("ada_lovelace", "alan_turing"),
            ("charles_babbage", "ada_lovelace"),
            ("grace_hopper", "ada_lovelace"),
        ):
            path = f"/users/{ids[follower]}/following/{ids[followee]}"
            api.put(path, headers=tokens[follower]).raise_for_status()
        time.sleep(2)  # user.created events reach the Post Service: mentions resolve
        for author, text in POSTS:
            api.post("/posts", json={"text": text}, headers=tokens[author]).raise_for_status()
            time.sleep(0.5)
        time.sleep(2)  # fan-out and notifications

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        page = browser.new_page(viewport={"width": 760, "height": 900})
        page.goto(f"{args.base_url}/#/login")
        page.get_by_label("Username").fill("ada_lovelace")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("ol.posts li")).to_have_count(len(POSTS))
        draft = "Drafting a note on #engines for @charles_babbage"
        page.get_by_label("What's happening?").fill(draft)
        page.screenshot(path=DOCS / "web-home.png")
        page.get_by_role("link", name="Notifications").click()
        expect(page.locator("ol.notifications li").first).to_be_visible()
        page.screenshot(path=DOCS / "web-notifications.png")
        browser.close()


def sign_up(api: httpx.Client, username: str) -> dict[str, str]:
    api.post("/users/", json={"username": username, "password": PASSWORD}).raise_for_status()
    signed_in = api.post("/auth/token", data={"username": username, "password": PASSWORD})
    signed_in.raise_for_status()
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


if __name__ == "__main__":
    main()
