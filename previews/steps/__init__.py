"""The render pipeline's steps: each takes an image and the Job and returns an image."""
