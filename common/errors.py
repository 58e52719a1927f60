"""The one exception type for errors a user can cause.

Missing data, a malformed file, an unknown registry name, an invalid option or override: each is
raised as `UserError` with a message that names the offending file or key and says how to fix it.
The command-line entry points catch it, print the message without a traceback and exit non-zero.
"""


class UserError(Exception):
    """An error the user can fix; the message names the file or config key and the fix."""
