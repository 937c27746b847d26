"""Pillow work with no I/O: decode (identify, limit, decode once), EXIF, render thumbnails."""
