"""The one error type of checkpoint loading: a one-line message that says what to do."""


class CheckpointError(ValueError):
    """A checkpoint could not be loaded; the message names the file and the fix."""
