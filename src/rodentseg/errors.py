"""The one exception type the command line turns into a clear message and a non-zero exit."""


class RodentsegError(Exception):
    """A problem with the user's input or environment, worded for the user.

    The message says what was expected, what was received and, where there is one, the fix.
    ``rodentseg`` prints it without a traceback and exits with status 2.
    """
