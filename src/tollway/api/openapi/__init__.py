"""The OpenAPI document of every client and admin route, and its docs page (SPEC §7).

`GET /schema/openapi.json` and `GET /schema`, unauthenticated.  Routes declare what Litestar
cannot read from their signatures with `opt=documented(...)` (see `declare`).
"""

from tollway.api.openapi.config import SCHEMA_PATH, openapi_config
from tollway.api.openapi.declare import Doc, documented, responds

__all__ = ["SCHEMA_PATH", "Doc", "documented", "openapi_config", "responds"]
