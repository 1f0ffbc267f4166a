"""The Windows scheduled task that runs ``mpsv3 up`` for one stack (pure text).

A user's task starts at their logon (``--user``, run "whether the user is logged on or not"
so no console window shows: ``S4U``); a system task starts at boot as ``SYSTEM``
(``--system``). No time limit (``PT0S``); a supervisor that failed is started again every
minute (``RestartOnFailure``); a second start while one runs is ignored (the lease would
refuse it anyway). ``schtasks /Create /XML`` reads the file as UTF-16. Typed and
unit-tested here; not run on this machine (no Windows).
"""

from __future__ import annotations

import subprocess
from xml.sax.saxutils import escape

from mpsv3.service_units.spec import UnitSpec

NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"
SYSTEM_SID = "S-1-5-18"
TEMPLATE = """<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="{namespace}">
  <RegistrationInfo>
    <Description>mpsv3 stack {instance} ({config})</Description>
    <URI>\\{name}</URI>
  </RegistrationInfo>
  <Triggers>
{trigger}
  </Triggers>
  <Principals>
    <Principal id="Author">
{principal}
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <IdleSettings>
      <StopOnIdleEnd>false</StopOnIdleEnd>
      <RestartOnIdle>false</RestartOnIdle>
    </IdleSettings>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <Priority>7</Priority>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{program}</Command>
      <Arguments>{arguments}</Arguments>
      <WorkingDirectory>{cwd}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"""


def task_name(spec: UnitSpec) -> str:
    return spec.name


def render(spec: UnitSpec, user: str) -> str:
    """The task's XML text (``user``: ``DOMAIN\\name`` of the account, for ``--user``)."""
    system = spec.scope == "system"
    account = SYSTEM_SID if system else user
    trigger = (
        "    <BootTrigger>\n      <Enabled>true</Enabled>\n    </BootTrigger>"
        if system
        else f"    <LogonTrigger>\n      <Enabled>true</Enabled>\n      <UserId>{escape(user)}</UserId>\n    </LogonTrigger>"
    )
    principal = (
        f"      <UserId>{account}</UserId>\n      <RunLevel>HighestAvailable</RunLevel>"
        if system
        else f"      <UserId>{escape(account)}</UserId>\n      <LogonType>S4U</LogonType>\n"
        "      <RunLevel>LeastPrivilege</RunLevel>"
    )
    program, *arguments = spec.up
    return TEMPLATE.format(
        namespace=NAMESPACE, instance=escape(spec.instance), config=escape(spec.config_path),
        name=escape(task_name(spec)), trigger=trigger, principal=principal, program=escape(program),
        arguments=escape(subprocess.list2cmdline(arguments)), cwd=escape(spec.working_dir),
    )
