"""The one exception type for bad user input.

Library code raises `InputError` for anything the user can fix (a wrong path,
a corrupt file, a config typo, NaN counts...). The CLI turns it into a one-line
message on stderr and exit code 2; every other exception is a bug.
"""


class InputError(ValueError):
    """Bad user input. The message is one line and names the file, key or value."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
