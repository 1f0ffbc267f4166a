"""The Mind Protocol demo stack: seven small, real services supervised by mpsv3.

Every program here is started by ``examples/mind-protocol/services.yaml`` as
``python -m mind.<program>`` with the example folder as its working directory. They talk to
each other over loopback only: a FalkorDB graph database (``falkordb_launcher``), an HTTP +
WebSocket API running the eight consciousness engines (``ws_api``), a dashboard, and four
workers that read and write the graph. Every port comes from an environment variable, so a
second copy of the stack runs beside the first on other ports.
"""
