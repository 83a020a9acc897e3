"""The IIIF Image API routes (2.1 and 3.0): image information, images and the base URI's redirect."""
