"""Where the shop's services find each other and their secrets: the environment only.

mpsv3 sets ``PGHOST``/``PGPORT``/``REDIS_URL`` (services.yaml ``env:``) and the secrets come
from ``.env`` (``env_file:``); nothing here has a default that could leak into production.
"""

from __future__ import annotations

import os

from psycopg.conninfo import make_conninfo

QUEUE = "shop"


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"shop: {name} is not set (it comes from services.yaml or .env)")
    return value


def app_role() -> tuple[str, str, str]:
    """The application's (database, role, password), from .env."""
    return _need("APP_DB_NAME"), _need("APP_DB_USER"), _need("APP_DB_PASSWORD")


def app_conninfo() -> str:
    """libpq connection string of the application's own role (the app and the workers)."""
    dbname, user, password = app_role()
    return make_conninfo(
        host=_need("PGHOST"), port=_need("PGPORT"), dbname=dbname, user=user, password=password,
        connect_timeout=5, application_name=os.environ.get("MPSV3_SERVICE", "shop"),
    )


def admin_conninfo() -> str:
    """libpq connection string of the superuser (only the migration uses it)."""
    return make_conninfo(
        host=_need("PGHOST"), port=_need("PGPORT"), dbname="postgres", user="postgres",
        password=_need("POSTGRES_PASSWORD"), connect_timeout=5, application_name="shop-migrate",
    )


def redis_url() -> str:
    return _need("REDIS_URL")
