"""Errors that carry a one-line message meant for the user (no traceback needed)."""


class InputError(ValueError):
    """Bad user input: a file, a list, a checkpoint or an option that cannot be used.

    The message is one line that names the input and the problem, e.g.
    ``clip.mp4: no video stream``.
    """
