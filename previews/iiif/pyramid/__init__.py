"""A tile pyramid: an image decoded once, kept as raw 8-bit pixels at scale factors 1, 2, 4, ... so that
any tile later is a read of the blocks it covers and a resample, never a decode of the original.

Deep zoom asks for hundreds of 512 px tiles of one image; Pillow decodes no region of a JPEG, so each
tile of a 50 MP original would decode all 50 MP again. The converter tier keeps one pyramid per image
version (made once across processes, purged with its original): `layout.py` is the file, `making.py`
makes it from the source, `reading.py` reads regions of it, `policy.py` says which requests use it.
"""
