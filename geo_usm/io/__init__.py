"""Readers for a city's source files (private: the pipeline calls :func:`read_source`)."""

from geo_usm.io.readers import RawTable, file_sha256, read_polygons, read_source

__all__ = ["RawTable", "file_sha256", "read_polygons", "read_source"]
