"""What Linux offers to make files unalterable: permission bits, and the immutable flag (`chattr +i`).

Pure helpers with no knowledge of the store's layout: the capability check, reading and setting
FS_IMMUTABLE_FL through the FS_IOC_GETFLAGS / FS_IOC_SETFLAGS ioctls, and the seal check of one path.

* Mode bits (0444 files, 0555 folders) stop other accounts and mistakes; the owning account can `chmod` them
  back, so against the owner they are a tripwire (a file found writable is reported), not a wall.
* FS_IMMUTABLE_FL stops every process without CAP_LINUX_IMMUTABLE, the owner and root without it included:
  no write, no chmod, no rename, no unlink, no new link. Only a process with the capability can clear it.
"""
from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
from pathlib import Path

__all__ = [
    "CAP_LINUX_IMMUTABLE", "DIR_MODE", "FILE_MODE", "FS_IMMUTABLE_FL", "has_capability", "is_immutable",
    "seal_problem", "set_immutable",
]

#: Sealed evidence files and folders.
FILE_MODE = 0o444
DIR_MODE = 0o555
#: linux/capability.h
CAP_LINUX_IMMUTABLE = 9
#: linux/fs.h
FS_IMMUTABLE_FL = 0x00000010
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602


def has_capability(cap: int = CAP_LINUX_IMMUTABLE, *, status: str | None = None) -> bool:
    """True when this process's effective capability set holds *cap* (read from /proc/self/status, or *status*)."""
    if status is None:
        try:
            status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace")
        except OSError:
            return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split(":", 1)[1].strip(), 16) >> cap & 1)
            except ValueError:
                return False
    return False


def _open(path: Path) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    if path.is_dir():
        flags |= os.O_DIRECTORY
    return os.open(path, flags)


def _flags(fd: int) -> int:
    buf = bytearray(8)
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
    return int.from_bytes(buf[:4], sys.byteorder)


def is_immutable(path: Path) -> bool:
    """True when *path* carries FS_IMMUTABLE_FL; False also where the filesystem has no such flag."""
    try:
        fd = _open(path)
    except OSError:
        return False
    try:
        return bool(_flags(fd) & FS_IMMUTABLE_FL)
    except OSError:
        return False
    finally:
        os.close(fd)


def set_immutable(path: Path, on: bool) -> None:
    """Set or clear FS_IMMUTABLE_FL on *path*. Raises PermissionError without CAP_LINUX_IMMUTABLE, and
    OSError(ENOTTY/EOPNOTSUPP) on a filesystem without the flag (tmpfs before Linux 6.0, NFS, FUSE)."""
    fd = _open(path)
    try:
        flags = _flags(fd)
        wanted = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        if wanted != flags:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, wanted.to_bytes(4, sys.byteorder) + bytes(4))
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL):
            raise OSError(errno.EOPNOTSUPP, f"the filesystem holding {path} has no immutable flag") from exc
        raise
    finally:
        os.close(fd)


def seal_problem(path: Path, *, folder: bool = False, immutable: bool = False) -> str | None:
    """Why *path* is not sealed as the store left it (None when it is): missing, a symlink, not a regular file
    (folder), writable by anyone, a second hard link, or, for an *immutable* store, without FS_IMMUTABLE_FL."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path} is missing"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link"
    if folder:
        if not stat.S_ISDIR(st.st_mode):
            return f"{path} is not a folder"
    elif not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o222:
        return f"{path} is writable (mode {mode:04o}; the store seals it {DIR_MODE if folder else FILE_MODE:04o})"
    if not folder and st.st_nlink != 1:
        return f"{path} has {st.st_nlink} hard links (a second name can rewrite it)"
    if immutable and not is_immutable(path):
        return f"{path} has lost its immutable flag (chattr +i)"
    return None
