"""The example shop: a Starlette app (``shop.app``), its migrations (``shop.migrate``) and the
jobs its rq workers run (``shop.jobs``), all configured from the environment (``shop.settings``)."""
