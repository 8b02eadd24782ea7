"""Routers of the geo-usm API: OGC API - Features (``features``) and service routes."""
