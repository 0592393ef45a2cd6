"""Output paths checked before any work: a file or folder the command will write must be writable.

Refused with a message naming the flag: a path under an existing file, an
existing folder where a file is meant (or a file where a folder is meant),
a folder without write permission, and a file name without one of the
expected extensions.  Nothing is created here: the command makes missing
folders when it writes.
"""
import os

from emerging.errors import InputError


def _writable_folder(folder: str, flag: str, path: str) -> None:
    """Raise InputError naming `flag` unless `folder` (for `path`) exists as a writable folder or can be made
    in one."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(f'{flag} {path!r}: {existing} is a file, so nothing can be written under it')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f'{flag} {path!r}: no permission to write in {existing}')


def check_output_file(path: str, flag: str, extensions: tuple = ()) -> str:
    """Refuse a file path that cannot be written.

    Args:
      path: the file the command will write.
      flag: the flag that gave it ('--out'), for the message.
      extensions: the allowed endings ('.png', ...); empty: any.

    Returns:
      `path`.

    Raises:
      InputError: naming the flag and what is wrong.
    """
    if extensions and not path.lower().endswith(extensions):
        raise InputError(f'{flag} {path!r} must end with {" or ".join(extensions)}')
    if os.path.isdir(path):
        raise InputError(f'{flag} {path!r} is a folder; expected the name of a file to write')
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f'{flag} {path!r}: no permission to overwrite it')
    _writable_folder(os.path.dirname(os.path.abspath(path)), flag, path)
    return path


def check_output_folder(path: str, flag: str) -> str:
    """Refuse a folder path that cannot be written into.

    Args:
      path: the folder the command will write into.
      flag: the flag that gave it ('--logdir'), for the message.

    Returns:
      `path`.

    Raises:
      InputError: naming the flag and what is wrong.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(f'{flag} {path!r} is a file; expected a folder')
    _writable_folder(path, flag, path)
    return path
