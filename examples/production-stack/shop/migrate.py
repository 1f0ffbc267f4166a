"""The schema, applied once: ``python -m shop.migrate`` (the ``migrate`` task of services.yaml).

Idempotent: creates the application's role and database if they are missing (as the
superuser), then applies, in order and each in its own transaction, the migrations that
``schema_migrations`` does not list yet. Exits 0 when the schema is current, 1 on an error
(mpsv3 then retries it with backoff; its dependents wait).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from shop import settings

if TYPE_CHECKING:
    from typing_extensions import LiteralString

MIGRATIONS: list[tuple[str, LiteralString]] = [
    (
        "0001_orders",
        """CREATE TABLE orders (
               id bigserial PRIMARY KEY,
               item text NOT NULL,
               status text NOT NULL DEFAULT 'new',
               fulfilled_by text,
               created_at timestamptz NOT NULL DEFAULT now(),
               fulfilled_at timestamptz
           )""",
    ),
    ("0002_orders_status", "CREATE INDEX orders_status ON orders (status)"),
]


def ensure_role_and_database() -> None:
    dbname, user, password = settings.app_role()
    with psycopg.connect(settings.admin_conninfo(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [user]).fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)))
            print(f"migrate: created role {user}", flush=True)
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(user)))
            print(f"migrate: created database {dbname}", flush=True)


def apply_migrations() -> list[str]:
    applied = []
    with psycopg.connect(settings.app_conninfo()) as conn:
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                            name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())""")
        conn.commit()
        done = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
        for name, statement in MIGRATIONS:
            if name in done:
                continue
            with conn.transaction():
                conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", [name])
            applied.append(name)
    return applied


def main() -> int:
    try:
        ensure_role_and_database()
        applied = apply_migrations()
    except psycopg.Error as exc:
        print(f"migrate: failed: {exc}", file=sys.stderr, flush=True)
        return 1
    current = len(MIGRATIONS) - len(applied)
    print(f"migrate: applied {len(applied)} ({', '.join(applied) or 'none'}), {current} already current", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
