"""The IIIF Image API (2.1 and 3.0): its URL grammar, the image information document and the render."""
