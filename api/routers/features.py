"""OGC API - Features Part 1: landing page, conformance, collections and items.

Each route parses its query (:mod:`api.dependencies`), calls the provider and serialises; the
items pages are joined from the provider's pre-serialised GeoJSON features. Routes are plain
functions: FastAPI runs them in its thread pool, so serialising a large page never blocks the
event loop.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from api.dependencies import (
    GEOJSON_FORMATS,
    ITEMS_PARAMETERS,
    ItemsQuery,
    base_url,
    format_parameter,
    get_provider,
    items_query,
    query_checker,
)
from api.models import (
    Collection,
    Collections,
    ConfClasses,
    FeatureCollectionGeoJSON,
    FeatureGeoJSON,
    LandingPage,
)
from api.provider import CRS84, CollectionInfo, Provider
from api.responses import GEOJSON, HTML, JSON, OPENAPI_JSON, RawGeoJSONResponse

#: Conformance classes implemented.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]

_EXCEPTION = {"$ref": "#/components/schemas/OgcException"}
BAD_REQUEST = {
    "description": (
        "The request is invalid: a query parameter is unknown, repeated or has an invalid "
        "value, or the Host header names a host this service does not answer to."
    ),
    "content": {JSON: {"schema": _EXCEPTION}},
}
NOT_FOUND = {
    "description": "The collection or feature does not exist.",
    "content": {JSON: {"schema": _EXCEPTION}},
}
SERVER_ERROR = {
    "description": "A server error occurred.",
    "content": {JSON: {"schema": _EXCEPTION}},
}

CollectionId = Annotated[
    str, Path(alias="collectionId", description="Id of a collection, as listed at /collections.")
]
FeatureId = Annotated[
    str, Path(alias="featureId", description="Id of a feature: the value of its id attribute.")
]
ProviderDep = Annotated[Provider, Depends(get_provider)]

router = APIRouter()


def _responses(model: type, description: str, *, not_found: bool = False) -> dict[int | str, Any]:
    out: dict[int | str, Any] = {
        200: {"model": model, "description": description},
        400: BAD_REQUEST,
        500: SERVER_ERROR,
    }
    if not_found:
        out[404] = NOT_FOUND
    return out


def _format_only(*, formats: tuple[str, ...] = ("json",)) -> dict[str, Any]:
    return {"parameters": [format_parameter(formats)]}


def link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    """Return a link object.

    Parameters
    ----------
    href
        Absolute URL.
    rel
        Link relation.
    media_type
        Media type of the target.
    title
        Optional title.

    Returns
    -------
    dict

    """
    out = {"href": href, "rel": rel, "type": media_type}
    if title:
        out["title"] = title
    return out


def _collection_url(request: Request, collection_id: str) -> str:
    return f"{base_url(request)}/collections/{quote(collection_id, safe='')}"


def collection_document(
    request: Request, info: CollectionInfo, attribution: str | None
) -> dict[str, Any]:
    """Return the JSON document describing one collection.

    Parameters
    ----------
    request
        The request (for absolute links).
    info
        The collection's metadata.
    attribution
        Attribution statement, if any.

    Returns
    -------
    dict

    """
    url = _collection_url(request, info.id)
    doc: dict[str, Any] = {
        "id": info.id,
        "title": info.title,
        "description": info.description,
        "extent": {"spatial": {"bbox": [list(info.bbox)], "crs": CRS84}},
        "itemType": "feature",
        "crs": [CRS84],
        "links": [
            link(url, "self", JSON, "This collection"),
            link(f"{url}/items", "items", GEOJSON, f"Features of {info.id}"),
        ],
    }
    if attribution:
        doc["attribution"] = attribution
    return doc


def _attribution(provider: Provider) -> str | None:
    return "; ".join(provider.info.attribution) or None


@router.get(
    "/",
    summary="Landing page",
    description="Links to the API definition, the conformance declaration and the collections.",
    operation_id="getLandingPage",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(LandingPage, "The landing page."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_format_only(),
)
def landing_page(request: Request, provider: ProviderDep) -> JSONResponse:
    """Return the landing page."""
    base = base_url(request)
    info = provider.info
    doc: dict[str, Any] = {
        "title": request.app.title,
        "description": request.app.description,
        "links": [
            link(f"{base}/", "self", JSON, "This document"),
            link(f"{base}/api", "service-desc", OPENAPI_JSON, "The API definition (OpenAPI 3.0)"),
            link(f"{base}/api.html", "service-doc", HTML, "The API documentation"),
            link(f"{base}/conformance", "conformance", JSON, "Conformance declaration"),
            link(f"{base}/collections", "data", JSON, "The feature collections"),
        ],
    }
    attribution = _attribution(provider)
    if attribution:
        doc["attribution"] = attribution
    doc["build"] = {"id": info.build_id, "city": info.city, "finished": info.finished}
    return JSONResponse(doc)


@router.get(
    "/conformance",
    summary="Conformance declaration",
    description="The conformance classes of OGC API - Features this server implements.",
    operation_id="getConformanceDeclaration",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(ConfClasses, "The conformance classes."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_format_only(),
)
def conformance() -> JSONResponse:
    """Return the conformance declaration."""
    return JSONResponse({"conformsTo": CONFORMANCE})


@router.get(
    "/collections",
    summary="Feature collections",
    description="The public layers of the build with geometry, in the order of its catalogue.",
    operation_id="getCollections",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(Collections, "The collections."),
    dependencies=[Depends(query_checker())],
    openapi_extra=_format_only(),
)
def collections(request: Request, provider: ProviderDep) -> JSONResponse:
    """Return the list of collections."""
    attribution = _attribution(provider)
    return JSONResponse(
        {
            "links": [link(f"{base_url(request)}/collections", "self", JSON, "This document")],
            "collections": [
                collection_document(request, c, attribution) for c in provider.collections()
            ],
        }
    )


@router.get(
    "/collections/{collectionId}",
    summary="Describe a collection",
    description="Metadata of one feature collection: title, description, extent, links.",
    operation_id="describeCollection",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(Collection, "The collection.", not_found=True),
    dependencies=[Depends(query_checker())],
    openapi_extra=_format_only(),
)
def collection(
    request: Request, collection_id: CollectionId, provider: ProviderDep
) -> JSONResponse:
    """Return one collection's metadata."""
    info = provider.collection(collection_id)
    return JSONResponse(collection_document(request, info, _attribution(provider)))


def _page_url(url: str, query: ItemsQuery, *, offset: int) -> str:
    params: dict[str, Any] = {"limit": query.limit}
    if offset:
        params["offset"] = offset
    if query.bbox_text is not None:
        params["bbox"] = query.bbox_text
    if query.datetime_text is not None:
        params["datetime"] = query.datetime_text
    if query.format is not None:
        params["f"] = query.format
    return f"{url}?{urlencode(params, safe=',:/', quote_via=quote)}"


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    description=(
        "A page of features as GeoJSON in CRS84, with numberMatched, numberReturned and "
        "next/prev links for paging."
    ),
    operation_id="getFeatures",
    tags=["Data"],
    response_class=RawGeoJSONResponse,
    response_model=None,
    responses=_responses(FeatureCollectionGeoJSON, "The features.", not_found=True),
    openapi_extra={"parameters": [*ITEMS_PARAMETERS, format_parameter(GEOJSON_FORMATS)]},
)
def items(
    request: Request,
    collection_id: CollectionId,
    query: Annotated[ItemsQuery, Depends(items_query)],
    provider: ProviderDep,
) -> RawGeoJSONResponse:
    """Return a page of features."""
    page = provider.items(collection_id, bbox=query.bbox, offset=query.offset, limit=query.limit)
    url = _collection_url(request, collection_id)
    items_url = f"{url}/items"
    returned = len(page.features)
    links = [link(_page_url(items_url, query, offset=query.offset), "self", GEOJSON, "This page")]
    if returned and query.offset + returned < page.number_matched:
        next_url = _page_url(items_url, query, offset=query.offset + returned)
        links.append(link(next_url, "next", GEOJSON, "Next page"))
    if query.offset > 0:
        prev_offset = max(0, min(query.offset, page.number_matched) - query.limit)
        links.append(
            link(_page_url(items_url, query, offset=prev_offset), "prev", GEOJSON, "Previous page")
        )
    links.append(link(url, "collection", JSON, "The collection"))
    tail = json.dumps(
        {
            "numberMatched": page.number_matched,
            "numberReturned": returned,
            "timeStamp": _timestamp(),
            "links": links,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )
    body = b"".join(
        [
            b'{"type":"FeatureCollection","features":[',
            b",".join(page.features),
            b"],",
            tail[1:].encode(),
        ]
    )
    return RawGeoJSONResponse(body)


@router.get(
    "/collections/{collectionId}/items/{featureId:path}",
    summary="One feature",
    description="One feature as GeoJSON in CRS84.",
    operation_id="getFeature",
    tags=["Data"],
    response_class=RawGeoJSONResponse,
    response_model=None,
    responses=_responses(FeatureGeoJSON, "The feature.", not_found=True),
    dependencies=[Depends(query_checker(formats=GEOJSON_FORMATS))],
    openapi_extra=_format_only(formats=GEOJSON_FORMATS),
)
def item(
    request: Request, collection_id: CollectionId, feature_id: FeatureId, provider: ProviderDep
) -> RawGeoJSONResponse:
    """Return one feature."""
    feature = provider.item(collection_id, feature_id)
    url = _collection_url(request, collection_id)
    links = [
        link(f"{url}/items/{quote(feature_id, safe='')}", "self", GEOJSON, "This feature"),
        link(url, "collection", JSON, "The collection"),
    ]
    tail = json.dumps(links, ensure_ascii=False, separators=(",", ":"))
    return RawGeoJSONResponse(feature[:-1] + b',"links":' + tail.encode() + b"}")
