"""The baseline of the quick-read benchmark: a bare FastAPI app answering a constant.

``GET /constant`` returns a fixed JSON object shaped and sized like a cached
``GET /users/{id}`` answer, with no middleware, dependencies, response model, cache or database.

Run as a script, it is served by the launcher every service uses
(``terrascale.common.server.serve``: Gunicorn with ``uvicorn_worker.UvicornWorker``, keep-alive
5 s, the same logger setup), configured from the same environment variables (HOST, PORT,
WEB_CONCURRENCY, LOG_LEVEL, ...), so only the application differs between the two targets.
"""

from __future__ import annotations

from fastapi import FastAPI

from terrascale.common.server import serve
from terrascale.common.settings import ServiceSettings, load_settings

# Same keys, value types and roughly the same length as {"id", "username", "cached"} of a user.
CONSTANT: dict[str, object] = {
    "id": "241234567890123456",
    "username": "bench_0a1b2c3d",
    "cached": True,
}


def create_app() -> FastAPI:
    app = FastAPI(title="quick-read baseline")

    @app.get("/constant", response_model=None)
    async def constant() -> dict[str, object]:
        return CONSTANT

    return app


def main() -> None:
    serve(load_settings(ServiceSettings, service_name="quick-read-bare"), create_app)


if __name__ == "__main__":
    main()
