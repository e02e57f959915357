"""The one error type a user sees: a clear one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user (config, data, command line); printed as one line, exit 2."""

    exit_code = 2
