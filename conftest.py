import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["terrascale.common.testing.plugin"]

# CI runs property tests derandomized (the same examples every run, so a red build replays
# locally) and without an example database; ``deadline=None`` because many properties do I/O
# against real PostgreSQL and Redis, whose latency is not the code's. HYPOTHESIS_PROFILE=explore
# searches wider and randomly, for local runs hunting new counterexamples.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", max_examples=2_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
