"""The shop's HTTP API (Starlette, served by gunicorn with uvicorn workers behind nginx).

``GET /health``: the process answers (liveness: no database, so a database restart does not
restart the app); ``GET /``: which worker answered and what it sees of the database;
``POST /orders {"item": ...}``: a row in PostgreSQL and a job on the rq queue;
``GET /orders/{id}``: the row, ``fulfilled`` once a worker ran the job.

A connection per request keeps the example honest across a database restart (a pool would
do in a real deployment; psycopg_pool checks connections the same way).
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from redis import Redis
from rq import Queue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shop import settings


def _db() -> psycopg.Connection[Any]:
    return psycopg.connect(settings.app_conninfo())


def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "pid": os.getpid()})


def index(request: Request) -> JSONResponse:
    with _db() as conn:
        version = conn.execute("SHOW server_version").fetchone()
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    return JSONResponse({
        "app": "shop",
        "pid": os.getpid(),
        "postgres": version[0] if version else None,
        "orders": orders[0] if orders else 0,
        "migrations": applied[0] if applied else 0,
    })


async def create_order(request: Request) -> JSONResponse:
    body = await request.json()
    item = body.get("item") if isinstance(body, dict) else None
    if not isinstance(item, str) or not item:
        return JSONResponse({"error": "expected {\"item\": \"...\"}"}, status_code=400)
    from starlette.concurrency import run_in_threadpool

    order_id = await run_in_threadpool(_insert_and_enqueue, item)
    return JSONResponse({"id": order_id, "item": item, "status": "new"}, status_code=201)


def _insert_and_enqueue(item: str) -> int:
    with _db() as conn:
        row = conn.execute("INSERT INTO orders (item) VALUES (%s) RETURNING id", [item]).fetchone()
    assert row is not None
    queue = Queue(settings.QUEUE, connection=Redis.from_url(settings.redis_url()))
    queue.enqueue("shop.jobs.fulfil", row[0])
    return int(row[0])


def get_order(request: Request) -> JSONResponse:
    with _db() as conn:
        row = conn.execute(
            "SELECT id, item, status, fulfilled_by FROM orders WHERE id = %s",
            [request.path_params["order_id"]],
        ).fetchone()
    if row is None:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"id": row[0], "item": row[1], "status": row[2], "fulfilled_by": row[3]})


app = Starlette(routes=[
    Route("/health", health),
    Route("/", index),
    Route("/orders", create_order, methods=["POST"]),
    Route("/orders/{order_id:int}", get_order),
])
