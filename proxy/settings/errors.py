"""The error a setting raises at start-up: one line that names the variable and the forms it accepts."""


class ConfigError(ValueError):
    """A setting that can't be used; the message names the variable and the accepted forms.

    Not a PublicError: it stops the process before any request, and no client ever sees it.
    """
