"""The library's one error for bad input.

`InputError` is raised for anything a user passes or points to that cannot
be used: a flag value, a file, a shape.  Its message names the flag, file or
shape and says what is wrong; every entry point prints it on one line and
exits with code 2 before any work starts.
"""


class InputError(ValueError):
    """Bad input, named in the message (exit code 2 at the command line)."""
