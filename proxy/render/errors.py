"""How a job handed to the render host (proxy.render.host) can fail on the way, apart from the work's own errors.

Internal: proxy.render.file_jobs turns them into running the job here, or into a 503
(proxy.errors.RenderProcessEnded).
"""


class HostUnavailable(Exception):
    """No job reached the host (none listens, or it refused): the work may run here instead."""


class HostBusy(Exception):
    """The host's answer when it runs as many jobs as it may: nothing was run there."""


class HostDied(Exception):
    """The host took the job and ended (or stopped answering) before answering: the work must not run again
    here, since it may be what ended the host (a decoder's crash on a hostile file)."""
