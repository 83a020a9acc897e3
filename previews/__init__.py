"""Image work only: options grammar, the render pipeline, formats and the converter.

No HTTP, no asyncio, no cache. The pipeline arrives with the previews issue.
"""
