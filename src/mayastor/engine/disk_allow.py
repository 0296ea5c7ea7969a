"""Which files and block devices the io-engine may open: its ``--disk-allow`` patterns.

Every path the io-engine opens as a disk (a pool disk, a bdev, a nexus child given as
``aio://``, ``uring://`` or a bare path) is checked first; a path outside the patterns
is refused with `PermissionDenied` naming the path and the patterns, before anything is
opened. malloc, nvmf and bdev URIs name no path and are not checked.

Rules:

* patterns are shell-style globs (`fnmatch`) matched against whole absolute paths;
  ``*`` matches any characters, ``/`` included, so ``/srv/pools/*`` allows everything
  under /srv/pools;
* the default, when no pattern is given, is block devices (``/dev/*``) and files under
  the io-engine's state directory;
* the path is taken with ``.`` and ``..`` removed and every symbolic link resolved: the
  file it finally names must match, so a link in an allowed folder cannot lead out of
  it. One exception keeps udev's names usable: a link that itself matches a pattern
  and leads to a block device (``/dev/disk/by-id/...`` allowed by name) is accepted.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence

from mayastor.errors import InvalidArgument, PermissionDenied


def default_patterns(state_path: str) -> tuple[str, ...]:
    """Block devices, and files under the state directory `state_path`."""
    return ("/dev/*", os.path.join(os.path.abspath(state_path), "*"))


class DiskAllowList:
    """The patterns, and the check an io-engine runs before opening a path.

    Args:
        patterns: absolute glob patterns (at least one).

    Raises:
        InvalidArgument: no pattern, or one that is not an absolute path.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        if not patterns:
            raise InvalidArgument("--disk-allow needs at least one pattern")
        for pattern in patterns:
            if not pattern.startswith("/"):
                raise InvalidArgument(
                    f"--disk-allow pattern {pattern!r} is not an absolute path (e.g. /dev/sd*)"
                )
        self.patterns = tuple(patterns)

    def matches(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.patterns)

    def allowed(self, path: str) -> bool:
        """Whether `path` may be opened (see the module docstring)."""
        given = os.path.normpath(path)
        real = os.path.realpath(given)
        if self.matches(real):
            return True
        return self.matches(given) and _is_block_device(real)

    def check(self, path: str) -> None:
        """Refuse `path` unless it is allowed.

        Raises:
            PermissionDenied: the path (or the file it leads to) is outside the patterns.
        """
        if self.allowed(path):
            return
        real = os.path.realpath(path)
        leads = f" (which leads to {real})" if real != os.path.normpath(path) else ""
        raise PermissionDenied(
            f"disk {path}{leads} is outside the disks this io-engine may open "
            f"(--disk-allow {' '.join(self.patterns)}); nothing was opened. Start the "
            "io-engine with a --disk-allow pattern that covers it to use it"
        )


def _is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False
