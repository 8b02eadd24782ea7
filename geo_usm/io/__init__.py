"""Readers for a city's source files (private: ingest calls them)."""

from geo_usm.io.raster import RasterPixels, read_raster
from geo_usm.io.readers import (
    MAX_FILE_BYTES,
    MISPLACED_QUOTE,
    NUL_BYTE,
    UNBALANCED_QUOTE,
    WRONG_FIELD_COUNT,
    RawTable,
    file_sha256,
    read_polygons,
    read_source,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MISPLACED_QUOTE",
    "NUL_BYTE",
    "UNBALANCED_QUOTE",
    "WRONG_FIELD_COUNT",
    "RasterPixels",
    "RawTable",
    "file_sha256",
    "read_polygons",
    "read_raster",
    "read_source",
]
