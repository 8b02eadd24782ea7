"""geo-usm: an Urban Safety Monitor.

Joins a city's crime records, safety audits, perception surveys and urban features onto H3
hexagons and the city's lowest administrative units, and publishes a neighbourhood diagnosis.
"""

__version__ = "0.4.0"

__all__ = ["__version__"]
