"""Writes each service's OpenAPI document to web/openapi/, from the apps built in-process (no
server, no database): the web client's types are generated from these files."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from terrascale.common.keys import generate_private_key_pem
from terrascale.graph.app import create_app as create_graph_app
from terrascale.notifications.app import create_app as create_notification_app
from terrascale.posts.app import create_app as create_post_app
from terrascale.timelines.app import create_app as create_timeline_app
from terrascale.users.app import create_app as create_user_app

OUT = Path(__file__).resolve().parents[1] / "openapi"
APPS = {
    "users": create_user_app,
    "graph": create_graph_app,
    "posts": create_post_app,
    "timelines": create_timeline_app,
    "notifications": create_notification_app,
}


def main() -> None:
    # A throwaway key, so that the User Service does not warn that none is configured.
    os.environ.setdefault("JWT_PRIVATE_KEY", generate_private_key_pem())
    logging.disable(logging.WARNING)  # the others warn that no public key is configured
    OUT.mkdir(exist_ok=True)
    for name, create_app in APPS.items():
        document = create_app().openapi()
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
        (OUT / f"{name}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
