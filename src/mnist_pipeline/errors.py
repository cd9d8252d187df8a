"""The one exception type whose message is meant for the person running a stage."""


class PipelineError(Exception):
    """A failure the user can act on; its message is printed as one line, without a traceback."""
