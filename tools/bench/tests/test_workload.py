"""DeathStarBench's operations and mix, as TerraScale requests."""

from __future__ import annotations

import random
import re
from collections import Counter

import jwt

from terrascale.bench.workload import (
    COMPOSE,
    HOME,
    MIX,
    MIXED,
    TEXT_LENGTH,
    USER,
    Endpoints,
    Population,
    Workload,
    compose_text,
    token_issuer,
)
from terrascale.common.keys import generate_private_key_pem, load_private_key

USERNAMES = [f"user_{index}" for index in range(50)]
ENDPOINTS = Endpoints("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")


def test_a_composed_text_has_mentions_and_urls_and_256_characters() -> None:
    rng = random.Random(4)
    for _ in range(500):
        text = compose_text(rng, USERNAMES)
        mentions = re.findall(r"@(\w+)", text)
        urls = re.findall(r"http://sho\.rt/\w+", text)
        assert len(text) == TEXT_LENGTH
        assert 1 <= len(mentions) <= 6
        assert set(mentions) <= set(USERNAMES)
        assert 1 <= len(urls) <= 6


def test_tokens_are_signed_for_the_user() -> None:
    private_pem = generate_private_key_pem()
    token = token_issuer(private_pem).issue(42)
    public = load_private_key(private_pem).public_key()
    claims = jwt.decode(token, public, algorithms=["EdDSA"], audience="terrascale")
    assert claims["sub"] == "42"


def workload() -> Workload:
    population = Population(list(range(100, 150)), USERNAMES, [f"t{i}" for i in range(50)])
    return Workload(population, ENDPOINTS, random.Random(1))


def test_each_operation_is_the_matching_request() -> None:
    load = workload()
    home = load.next_request(HOME)()
    assert home.raw.startswith(b"GET /timelines/home?limit=10 HTTP/1.1\r\n")
    assert b"Authorization: Bearer t" in home.raw
    assert home.origin == ENDPOINTS.timeline
    user = load.next_request(USER)()
    assert re.match(rb"GET /users/1[0-4]\d/posts\?limit=10 HTTP/1.1\r\n", user.raw)
    compose = load.next_request(COMPOSE)()
    head, body = compose.raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /posts HTTP/1.1")
    assert f"Content-Length: {len(body)}".encode() in head


def test_the_mix_is_sixty_thirty_ten() -> None:
    next_request = workload().next_request(MIXED)
    drawn = Counter(next_request().operation for _ in range(20_000))
    for operation, share in MIX.items():
        assert abs(drawn[operation] / 20_000 - share) < 0.02
