"""Pydantic models of the OGC API - Features documents, used only to document the API.

Responses are built as plain dictionaries (or pre-serialised GeoJSON) and never validated
against these models at request time; the models give the OpenAPI document its schemas,
named after the OGC API - Features Part 1 schemas.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class Link(_Model):
    """A web link (RFC 8288)."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class LandingPage(_Model):
    """The landing page ``/``."""

    title: str
    description: str | None = None
    attribution: str | None = None
    links: list[Link]


class ConfClasses(_Model):
    """The conformance declaration ``/conformance``."""

    conforms_to: list[str] = Field(alias="conformsTo")


class SpatialExtent(_Model):
    """Spatial extent of a collection."""

    bbox: list[list[float]] = Field(min_length=1)
    crs: str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


class Extent(_Model):
    """Extent of a collection."""

    spatial: SpatialExtent


class CollectionField(_Model):
    """One field (property) of a collection, as the build's catalogue declares it."""

    name: str
    title: str
    type: str
    unit: str | None = None
    description: str
    extensive: bool | None = None
    null_reason: str | None = None


class Collection(_Model):
    """Metadata of one feature collection."""

    id: str
    title: str | None = None
    description: str | None = None
    attribution: str | None = None
    links: list[Link]
    extent: Extent | None = None
    item_type: str = Field(default="feature", alias="itemType")
    crs: list[str] | None = None
    number_of_features: int | None = Field(default=None, alias="numberOfFeatures", ge=0)
    fields: list[CollectionField] | None = None
    diagnosis: str | None = None


class Collections(_Model):
    """The list of feature collections ``/collections``."""

    links: list[Link]
    collections: list[Collection]


class FeatureGeoJSON(_Model):
    """A GeoJSON feature; geometry in CRS84."""

    type: Literal["Feature"]
    id: str
    geometry: dict[str, Any] | None
    properties: dict[str, Any] | None
    links: list[Link] | None = None


class FeatureCollectionGeoJSON(_Model):
    """A page of a feature collection, as a GeoJSON FeatureCollection."""

    type: Literal["FeatureCollection"]
    features: list[FeatureGeoJSON]
    links: list[Link] | None = None
    time_stamp: str | None = Field(default=None, alias="timeStamp")
    number_matched: int | None = Field(default=None, alias="numberMatched", ge=0)
    number_returned: int | None = Field(default=None, alias="numberReturned", ge=0)


class OgcException(_Model):
    """An error: problem details (RFC 7807) with the OGC exception code and description."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    description: str | None = None


class Health(_Model):
    """The service health ``/healthz``."""

    status: Literal["ok"]
    build_id: str
    city: str
    finished: str | None = None
    collections: dict[str, int]


class City(_Model):
    """One city served: its build's landing page and extent."""

    id: str
    name: str
    href: str
    bbox: list[float] = Field(min_length=4, max_length=4)
    build_id: str


class Cities(_Model):
    """The cities served ``/cities``."""

    links: list[Link]
    cities: list[City]
