"""EXIF orientation, then the `rotate` option (clockwise), then `flip`."""

from PIL import Image

from previews.imaging.job import Job

T = Image.Transpose
# EXIF orientation to the transposition that makes the image upright (EXIF 2.32, tag 0x0112).
_UPRIGHT = {
    2: (T.FLIP_LEFT_RIGHT,),
    3: (T.ROTATE_180,),
    4: (T.FLIP_TOP_BOTTOM,),
    5: (T.TRANSPOSE,),
    6: (T.ROTATE_270,),
    7: (T.TRANSVERSE,),
    8: (T.ROTATE_90,),
}
# Pillow turns counter-clockwise; imgproxy's `rotate` turns clockwise.
_CLOCKWISE = {90: T.ROTATE_270, 180: T.ROTATE_180, 270: T.ROTATE_90}


def transpositions(job: Job) -> list[Image.Transpose]:
    """The moves that make the image upright, then apply the requested rotation and flips; each is a copy."""
    options = job.options
    moves: list[Image.Transpose] = []
    if options.auto_rotate:
        moves.extend(_UPRIGHT.get(job.source.orientation, ()))
    if options.rotate:
        moves.append(_CLOCKWISE[options.rotate])
    if options.flip_horizontal:
        moves.append(T.FLIP_LEFT_RIGHT)
    if options.flip_vertical:
        moves.append(T.FLIP_TOP_BOTTOM)
    return moves


def orient(image: Image.Image, job: Job) -> Image.Image:
    """Make the image upright, then apply the requested rotation and flips."""
    for move in transpositions(job):
        image = image.transpose(move)
    return image
