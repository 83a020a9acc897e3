"""The errors of IIIF requests, with the statuses the Image API gives them (3.0 section 7.2)."""

from previews.errors import PreviewError


class IiifError(PreviewError):
    """Base of the errors of an IIIF request."""

    status = 400
    default_reason = "invalid IIIF request"


class InvalidIiifRequest(IiifError):
    """A region, size, rotation, quality or format that is malformed, or asks for what the image can't give
    (a region outside it, an upscale without `^` in 3.0, a size over the limits): 400 Bad Request."""

    status = 400
    default_reason = "invalid IIIF request"


class IiifNotImplemented(IiifError):
    """A well-formed request for something this server does not make (a format such as jp2 or pdf): 501."""

    status = 501
    default_reason = "not implemented"
