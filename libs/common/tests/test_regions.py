"""The split of shards between regions, the settings that carry it, and the guard that refuses
writes for users homed in another region."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import APIRouter

from terrascale.common.app import create_service_app
from terrascale.common.auth import AccessTokenIssuer, CurrentUserId
from terrascale.common.ids import compose_id
from terrascale.common.keys import generate_private_key_pem, load_private_key, public_key_pem
from terrascale.common.regions import MISDIRECTED_REQUEST, RegionMap, RegionMapError
from terrascale.common.settings import ConfigError, ServiceSettings, load_settings
from terrascale.common.testing.helpers import PROBLEM_JSON, serve_app

SPLIT = "eu=0-511,us=512-1023"


def user_on(shard: int) -> int:
    return compose_id(created_at=datetime.now(UTC), shard=shard, sequence=1)


def test_an_id_is_homed_where_its_shard_is() -> None:
    regions = RegionMap.parse(SPLIT, "eu")
    assert regions.home_of(user_on(0)) == "eu"
    assert regions.home_of(user_on(511)) == "eu"
    assert regions.home_of(user_on(512)) == "us"
    assert regions.home_of(user_on(2000)) is None
    assert regions.is_local(user_on(3))
    assert not regions.is_local(user_on(1000))
    assert regions.local_shards == range(512)


@pytest.mark.parametrize(
    ("spec", "local", "message"),
    [
        ("eu=0-511,us=500-1023", "eu", "overlap"),
        ("eu=0-511", "us", "not one of"),
        ("eu=511-0", "eu", "low to high"),
        ("eu:0-511", "eu", "not like"),
        ("eu=0-9000", "eu", "up to 8191"),
    ],
)
def test_bad_splits_are_refused(spec: str, local: str, message: str) -> None:
    with pytest.raises(RegionMapError, match=message):
        RegionMap.parse(spec, local)


def test_region_and_regions_come_together() -> None:
    with pytest.raises(ConfigError, match="REGION and REGIONS"):
        load_settings(ServiceSettings, _env_file=None, region="eu")
    with pytest.raises(ConfigError, match="not one of"):
        load_settings(ServiceSettings, _env_file=None, region="asia", regions=SPLIT)
    settings = load_settings(ServiceSettings, _env_file=None, region="us", regions=SPLIT)
    assert settings.region_map == RegionMap.parse(SPLIT, "us")
    assert load_settings(ServiceSettings, _env_file=None).region_map is None


async def test_writes_of_users_homed_elsewhere_are_misdirected() -> None:
    private_pem = generate_private_key_pem()
    issuer = AccessTokenIssuer(load_private_key(private_pem), "terrascale", "terrascale", 60)
    settings = ServiceSettings.model_validate(
        {
            "jwt_public_key": public_key_pem(load_private_key(private_pem)),
            "region": "eu",
            "regions": SPLIT,
            "redis_port": 1,
            "redis_timeout_seconds": 0.05,
        }
    )
    router = APIRouter()

    @router.post("/things")
    async def write(user_id: CurrentUserId) -> dict[str, str]:
        return {"by": str(user_id)}

    @router.get("/things")
    async def read(user_id: CurrentUserId) -> dict[str, str]:
        return {"for": str(user_id)}

    app = create_service_app(
        settings=settings, title="t", version="0", description="", routers=[router]
    )
    local, remote = user_on(7), user_on(700)
    async with serve_app(app) as client:

        def auth(user_id: int) -> dict[str, str]:
            return {"Authorization": f"Bearer {issuer.issue(user_id)}"}

        assert (await client.post("/things", headers=auth(local))).status_code == 200
        refused = await client.post("/things", headers=auth(remote))
        assert refused.status_code == MISDIRECTED_REQUEST
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert refused.json()["home_region"] == "us"
        assert (await client.get("/things", headers=auth(remote))).status_code == 200
        # A bad token is the route's to refuse, as without regions.
        bad = await client.post("/things", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
