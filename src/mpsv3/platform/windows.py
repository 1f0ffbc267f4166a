"""Windows process control: a Job Object per service, CTRL_BREAK to stop, named-mutex lease.

Why here: Windows has no process groups to signal and no flock. A service is started
suspended in a new console process group, put into its own Job Object (kill-on-close, so a
dying supervisor takes every service with it), then resumed: nothing it starts can escape
the job before the assignment. A graceful stop is CTRL_BREAK_EVENT to its group (it
reaches the service only when it shares the supervisor's console); the hard stop is
TerminateJobObject. Everything goes through ctypes; no pywin32.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from ctypes import wintypes
from pathlib import Path

import psutil

from mpsv3.platform.base import (
    ExitStatus,
    SpawnError,
    leader_identity,
    lease_file_name,
    runtime_dir,
)
from mpsv3.platform.leader import LeaderProcess, start_leader
from mpsv3.platform.scan import is_alive, iter_marked, self_and_ancestors

assert sys.platform == "win32"

CREATE_SUSPENDED = 0x00000004
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_BASIC_PROCESS_ID_LIST = 3
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100
PROCESS_SUSPEND_RESUME = 0x0800
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
SYNCHRONIZE = 0x00100000
WAIT_OBJECT_0 = 0x000
WAIT_ABANDONED = 0x080
WAIT_TIMEOUT = 0x102
ERROR_MORE_DATA = 234

#: Exit code given to processes killed through TerminateJobObject, so that ``wait``
#: can report them as ``killed by SIGKILL`` like on POSIX.
KILLED_EXIT_CODE = 0xDEAD

#: Line limit of the output stream (a longer line is an error for ``readline``).
OUTPUT_LIMIT = 1 << 20

_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
_ntdll = ctypes.WinDLL("ntdll")

_kernel32.CreateJobObjectW.argtypes = [ctypes.c_void_p, wintypes.LPCWSTR]
_kernel32.CreateJobObjectW.restype = wintypes.HANDLE
_kernel32.SetInformationJobObject.argtypes = [
    wintypes.HANDLE,
    ctypes.c_int,
    ctypes.c_void_p,
    wintypes.DWORD,
]
_kernel32.SetInformationJobObject.restype = wintypes.BOOL
_kernel32.QueryInformationJobObject.argtypes = [
    wintypes.HANDLE,
    ctypes.c_int,
    ctypes.c_void_p,
    wintypes.DWORD,
    ctypes.POINTER(wintypes.DWORD),
]
_kernel32.QueryInformationJobObject.restype = wintypes.BOOL
_kernel32.AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
_kernel32.AssignProcessToJobObject.restype = wintypes.BOOL
_kernel32.TerminateJobObject.argtypes = [wintypes.HANDLE, wintypes.UINT]
_kernel32.TerminateJobObject.restype = wintypes.BOOL
_kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
_kernel32.OpenProcess.restype = wintypes.HANDLE
_kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
_kernel32.CloseHandle.restype = wintypes.BOOL
_kernel32.CreateMutexW.argtypes = [ctypes.c_void_p, wintypes.BOOL, wintypes.LPCWSTR]
_kernel32.CreateMutexW.restype = wintypes.HANDLE
_kernel32.ReleaseMutex.argtypes = [wintypes.HANDLE]
_kernel32.ReleaseMutex.restype = wintypes.BOOL
_kernel32.WaitForSingleObject.argtypes = [wintypes.HANDLE, wintypes.DWORD]
_kernel32.WaitForSingleObject.restype = wintypes.DWORD
_ntdll.NtResumeProcess.argtypes = [wintypes.HANDLE]
_ntdll.NtResumeProcess.restype = ctypes.c_long


class _IoCounters(ctypes.Structure):
    _fields_ = [
        ("ReadOperationCount", ctypes.c_ulonglong),
        ("WriteOperationCount", ctypes.c_ulonglong),
        ("OtherOperationCount", ctypes.c_ulonglong),
        ("ReadTransferCount", ctypes.c_ulonglong),
        ("WriteTransferCount", ctypes.c_ulonglong),
        ("OtherTransferCount", ctypes.c_ulonglong),
    ]


class _BasicLimitInformation(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", wintypes.LARGE_INTEGER),
        ("PerJobUserTimeLimit", wintypes.LARGE_INTEGER),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class _ExtendedLimitInformation(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", _BasicLimitInformation),
        ("IoInfo", _IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


def _win_error() -> OSError:
    return ctypes.WinError(ctypes.get_last_error())


def _close(handle: int | None) -> None:
    if handle:
        _kernel32.CloseHandle(handle)


def _create_kill_on_close_job() -> int:
    job = _kernel32.CreateJobObjectW(None, None)
    if not job:
        raise _win_error()
    info = _ExtendedLimitInformation()
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    ok = _kernel32.SetInformationJobObject(
        job, JOB_OBJECT_EXTENDED_LIMIT_INFORMATION, ctypes.byref(info), ctypes.sizeof(info)
    )
    if not ok:
        error = _win_error()
        _close(job)
        raise error
    return int(job)


def _assign_and_resume(job: int, pid: int) -> None:
    """Put the suspended process ``pid`` into ``job``, then let it run."""
    access = PROCESS_SET_QUOTA | PROCESS_TERMINATE | PROCESS_SUSPEND_RESUME
    process = _kernel32.OpenProcess(access, False, pid)
    if not process:
        raise _win_error()
    try:
        if not _kernel32.AssignProcessToJobObject(job, process):
            raise _win_error()
        status = int(_ntdll.NtResumeProcess(process))
        if status < 0:
            raise OSError(f"NtResumeProcess failed with NTSTATUS {status & 0xFFFFFFFF:#010x}")
    finally:
        _close(process)


def _job_pids(job: int) -> list[int]:
    """Pids currently assigned to ``job`` (JobObjectBasicProcessIdList)."""
    capacity = 256
    while True:

        class _PidList(ctypes.Structure):
            _fields_ = [
                ("NumberOfAssignedProcesses", wintypes.DWORD),
                ("NumberOfProcessIdsInList", wintypes.DWORD),
                ("ProcessIdList", ctypes.c_size_t * capacity),
            ]

        buffer = _PidList()
        ok = _kernel32.QueryInformationJobObject(
            job, JOB_OBJECT_BASIC_PROCESS_ID_LIST, ctypes.byref(buffer), ctypes.sizeof(buffer), None
        )
        if ok:
            count = int(buffer.NumberOfProcessIdsInList)
            return [int(buffer.ProcessIdList[i]) for i in range(count)]
        if ctypes.get_last_error() != ERROR_MORE_DATA or capacity >= 1 << 16:
            return []
        capacity *= 4


async def wait_pids_exit(pids: list[int], timeout: float) -> bool:
    """Wait in a helper thread (psutil waits on the process handles) for every pid to exit."""
    procs = []
    for pid in set(pids):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    if not procs:
        return True
    _, alive = await asyncio.to_thread(psutil.wait_procs, procs, max(timeout, 0.0))
    return not [proc for proc in alive if is_alive(proc)]


class WindowsProcessTree:
    """A service in its own console process group and Job Object.

    Owned by the service's runner task. The job handle is closed once the whole tree is
    gone; until then, a dying supervisor closing it kills the tree (KILL_ON_JOB_CLOSE).
    """

    def __init__(self, proc: LeaderProcess, job: int, env: dict[str, str]) -> None:
        self._proc = proc
        self._job: int | None = job
        self._killed = False
        self.pid: int = proc.pid
        self.pgid: int | None = None
        self.output: asyncio.StreamReader = proc.output
        self.create_time, self._markers = leader_identity(proc.pid, env)

    async def wait(self) -> ExitStatus:
        returncode = await self._proc.wait()
        if self._killed and returncode == KILLED_EXIT_CODE:
            return ExitStatus(code=None, signal="SIGKILL")
        return ExitStatus.from_returncode(returncode)

    def alive_members(self) -> list[int]:
        excluded = self_and_ancestors()
        members: set[int] = set()
        if self._job is not None:
            members.update(_job_pids(self._job))
        if self._markers is not None:
            instance, service = self._markers
            members.update(proc.pid for proc in iter_marked(instance, service))
        alive = []
        for pid in sorted(members - excluded):
            try:
                if is_alive(psutil.Process(pid)):
                    alive.append(pid)
            except psutil.Error:
                continue
        return alive

    def send_signal(self, signame: str) -> None:
        """SIGKILL kills the job; any other name is CTRL_BREAK_EVENT to the leader's group."""
        if signame.strip().upper() in ("SIGKILL", "KILL", "9"):
            self.kill()
            return
        if self._proc.returncode is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.CTRL_BREAK_EVENT)

    def signal_leader(self, signame: str) -> None:
        """Only the leader's console group can be signalled: the same as ``send_signal``."""
        self.send_signal(signame)

    def resume(self) -> None:
        """Windows has no stopped processes to continue."""

    def kill(self) -> None:
        self._killed = True
        if self._job is not None:
            _kernel32.TerminateJobObject(self._job, KILLED_EXIT_CODE)
        if self._markers is not None:
            instance, service = self._markers
            for proc in iter_marked(instance, service):
                with contextlib.suppress(psutil.Error):
                    proc.kill()

    async def wait_gone(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            members = self.alive_members()
            if not members:
                if self._proc.returncode is not None:
                    job, self._job = self._job, None
                    _close(job)
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await wait_pids_exit(members, remaining)


async def spawn(argv: list[str], cwd: Path, env: dict[str, str]) -> WindowsProcessTree:
    """Start ``argv`` suspended in a new process group, put it in a new job, resume it.

    Raises:
        SpawnError: the program cannot be executed, or the job cannot be set up.
    """
    if not argv:
        raise SpawnError("cannot start an empty command")
    try:
        job = _create_kill_on_close_job()
    except OSError as exc:
        raise SpawnError(f"cannot start {argv[0]!r}: cannot create a job object: {exc}") from exc
    try:
        proc = await start_leader(
            argv,
            OUTPUT_LIMIT,
            cwd=cwd,
            env=env,
            creationflags=subprocess.CREATE_NEW_PROCESS_GROUP | CREATE_SUSPENDED,
        )
    except OSError as exc:
        _close(job)
        reason = exc.strerror or str(exc)
        raise SpawnError(f"cannot start {argv[0]!r}: {reason}") from exc
    try:
        _assign_and_resume(job, proc.pid)
    except OSError as exc:
        with contextlib.suppress(OSError):
            proc.kill()
        await proc.wait()
        _close(job)
        raise SpawnError(f"cannot start {argv[0]!r}: cannot put it in a job object: {exc}") from exc
    return WindowsProcessTree(proc, job, env)


def prepare_supervisor(loop: asyncio.AbstractEventLoop) -> None:
    """Check that the loop can run subprocesses (the proactor loop, the default)."""
    if not isinstance(loop, asyncio.ProactorEventLoop):
        raise RuntimeError("mpsv3 needs asyncio's ProactorEventLoop on Windows")


async def reclaim(procs: list[psutil.Process], grace_s: float = 3.0) -> list[int]:
    """Terminate leftovers of an earlier run and their descendants.

    A leftover of a dead supervisor is in no console of ours, so CTRL_BREAK cannot reach
    it; TerminateProcess is the only stop. ``grace_s`` bounds the wait for them to vanish.

    Returns:
        Every pid that was terminated, sorted.
    """
    excluded = self_and_ancestors()
    targets: dict[int, psutil.Process] = {}
    for proc in procs:
        if proc.pid in excluded or not is_alive(proc):
            continue
        with contextlib.suppress(psutil.Error):
            for child in proc.children(recursive=True):
                targets.setdefault(child.pid, child)
        targets[proc.pid] = proc
    for proc in targets.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()
    await wait_pids_exit(list(targets), grace_s)
    return sorted(targets)


class SingletonLease:
    """OS-level lease for an instance name: the named mutex ``Local\\mpsv3-<name>``.

    Windows releases (abandons) the mutex when the holder dies. A mutex is owned by the
    thread that acquired it: acquire and release from the supervisor's main thread, which
    lives as long as the lease. The holder's PID goes to a side file for messages only.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        safe = lease_file_name(name)
        self.mutex_name = f"Local\\mpsv3-{safe}"
        self.path = runtime_dir() / f"{safe}.pid"
        self._handle: int | None = None

    def acquire(self) -> bool:
        """Take the lease without blocking; True if we hold it now."""
        if self._handle is not None:
            return True
        handle = _kernel32.CreateMutexW(None, False, self.mutex_name)
        if not handle:
            raise _win_error()
        result = int(_kernel32.WaitForSingleObject(handle, 0))
        if result in (WAIT_OBJECT_0, WAIT_ABANDONED):
            self._handle = int(handle)
            with contextlib.suppress(OSError):
                self.path.write_text(f"{os.getpid()}\n")
            return True
        error = _win_error()
        _close(handle)
        if result == WAIT_TIMEOUT:
            return False
        raise error

    def holder_pid(self) -> int | None:
        """Who holds the lease: us, else the live PID in the side file, else None."""
        if self._handle is not None:
            return os.getpid()
        try:
            text = self.path.read_text(errors="replace").strip()
        except OSError:
            return None
        if not text.isdigit():
            return None
        pid = int(text)
        return pid if psutil.pid_exists(pid) else None

    def release(self) -> None:
        """Give the lease up (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(OSError):
            self.path.write_text("")
        _kernel32.ReleaseMutex(handle)
        _close(handle)

    def __enter__(self) -> SingletonLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
