"""The one exception type the command line turns into a clear message and a non-zero exit."""


class RodentsegError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The message says what was expected, what was received and, where there is one, the fix.
    ``rodentseg`` prints it without a traceback and exits with status 2.
    """


def from_os_error(error: OSError) -> RodentsegError:
    """A :class:`RodentsegError` worded for an ``OSError`` the system raised while reading or
    writing (a full disk, no permission, a file name too long, ...): what happened, on which
    path, and the fix where there is one; one line.

    Args:
        error: what was raised; its ``errno``, ``strerror`` and ``filename`` are used.
    """
    import errno

    path = error.filename if error.filename is not None else "a file"
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return RodentsegError(
            f"no space left while writing {path} ({reason}); expected room for the output: free "
            "some space or choose another --out (the unfinished output was removed)")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RodentsegError(f"cannot write or read {path} ({reason}); expected a path you may "
                              "write to: choose another --out or fix its permissions")
    if error.errno == errno.ENAMETOOLONG:
        name = str(path).rsplit("/", 1)[-1]
        return RodentsegError(f"file name too long ({len(name.encode())} bytes, most file systems "
                              f"allow 255): {path}; rename the input to a shorter name")
    return RodentsegError(f"{reason}: {path}")
