"""A seccomp filter that refuses io_uring to a process, as container runtimes often do.

Docker's default profile and hardened hosts refuse ``io_uring_setup`` with EPERM; this
gives one process (and what it executes) the same kernel behaviour, so tests can show
what the uring driver says there. x86-64 only, like the uring driver.
"""

from __future__ import annotations

import ctypes
import errno
import struct

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR_IO_URING_SETUP = 425
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_RET_K = 0x06
_INSTRUCTION = struct.Struct("=HBBI")


def _program() -> bytes:
    """Classic BPF over `struct seccomp_data` (nr at offset 0, arch at offset 4)."""
    steps = [
        (_LD_W_ABS, 0, 0, 4),  # arch
        (_JEQ_K, 0, 3, _AUDIT_ARCH_X86_64),  # another arch: allow
        (_LD_W_ABS, 0, 0, 0),  # syscall number
        (_JEQ_K, 0, 1, _NR_IO_URING_SETUP),
        (_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM),
        (_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
    ]
    return b"".join(_INSTRUCTION.pack(*step) for step in steps)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def deny_io_uring() -> None:
    """Make io_uring_setup fail with EPERM in this process from now on (irreversibly).

    Meant as a `preexec_fn`: it then applies to the child only.

    Raises:
        OSError: the kernel refused the filter.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    program = _program()
    fprog = _SockFprog(len(program) // _INSTRUCTION.size, program)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
