"""A user's mistake in what fundwatch was given (a file, a store, a setting):
the commands report it as one line, never as a traceback."""


class InputError(ValueError):
    pass
