"""Run a stack at boot: the unit files of each service manager, and their installer.

Why a package apart from ``export``: ``export`` turns each *service* into a unit of another
manager; this runs the *supervisor* itself under one (systemd, launchd, the Windows task
scheduler), so that the stack starts at boot and a dead supervisor comes back. What the
three files say is computed once, from the plan, as a :class:`UnitSpec`; each renderer is
pure text (``systemd.py``, ``launchd.py``, ``windows_task.py``); only ``installer.py``
writes files and runs ``systemctl``, ``launchctl`` or ``schtasks``.
"""

from mpsv3.service_units.spec import Scope, UnitSpec, unit_spec

__all__ = ["Scope", "UnitSpec", "unit_spec"]
