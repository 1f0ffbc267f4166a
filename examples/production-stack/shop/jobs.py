"""What the rq workers run: ``fulfil(order_id)`` marks an order fulfilled by this worker."""

from __future__ import annotations

import os

import psycopg

from shop import settings


def fulfil(order_id: int) -> str:
    worker = os.environ.get("MPSV3_SERVICE", f"pid {os.getpid()}")
    with psycopg.connect(settings.app_conninfo()) as conn:
        conn.execute(
            "UPDATE orders SET status = 'fulfilled', fulfilled_by = %s, fulfilled_at = now() WHERE id = %s",
            [worker, order_id],
        )
    return worker
