"""`blur` and `sharpen`, with imgproxy's sigma as the argument."""

from PIL import Image, ImageFilter

from previews.imaging.job import Job


def blur_and_sharpen(image: Image.Image, job: Job) -> Image.Image:
    """Gaussian blur by sigma, then an unsharp mask of radius sigma."""
    options = job.options
    if options.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(options.blur))
    if options.sharpen > 0:
        image = image.filter(ImageFilter.UnsharpMask(radius=options.sharpen, percent=100, threshold=0))
    return image
