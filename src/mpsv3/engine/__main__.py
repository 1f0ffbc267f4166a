"""``python -m mpsv3.engine``: the supervisor's own process, started by ``mpsv3 up``'s keeper."""

from mpsv3.engine.main import main

main()
