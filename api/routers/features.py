"""OGC API - Features: landing page, conformance, collections, items, queryables, diagnoses.

Each route parses its query (:mod:`api.dependencies`), calls the provider and serialises; the
items pages are joined from the provider's pre-serialised GeoJSON features (property filters,
``sortby`` and ``properties`` take the provider's slower path). Every resource has an HTML view
(``f=html``, or a browser's ``Accept``; :func:`api.responses.html_page`), the items also CSV and
GeoPackage downloads. Each collection's own items path, with its typed filters, is added to the
OpenAPI document by :func:`collection_paths`. Routes are plain functions: FastAPI runs them in
its thread pool, so serialising a large page never blocks the event loop.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import tempfile
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import pyogrio
import shapely
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.dependencies import (
    ITEM_FORMATS,
    ITEMS_FORMATS,
    ITEMS_PARAMETERS,
    JSON_HTML_FORMATS,
    QUERYABLE_TYPES,
    ItemsQuery,
    ProviderDep,
    base_url,
    filter_parameters,
    format_parameter,
    items_query,
    properties_parameter,
    query_checker,
    queryables,
    sortby_parameter,
    wants_html,
)
from api.models import (
    Collection,
    Collections,
    ConfClasses,
    FeatureCollectionGeoJSON,
    FeatureGeoJSON,
    LandingPage,
)
from api.provider import CRS84, CollectionInfo, ItemsPage, Provider
from api.responses import (
    BUILD_CACHE_CONTROL,
    CSV,
    GEOJSON,
    GPKG,
    HTML,
    JSON,
    OPENAPI_JSON,
    PROBLEM_JSON,
    GzipPages,
    RawGeoJSONResponse,
    accepts_gzip,
    build_etag,
    html_page,
    not_modified,
)

#: Conformance classes implemented.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
]

#: Link relation of a collection's queryables (OGC API - Features Part 3).
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
#: Link relation of a collection's sortables (OGC API - Features Part 5).
REL_SORTABLES = "http://www.opengis.net/def/rel/ogc/1.0/sortables"
SCHEMA_JSON = "application/schema+json"

_EXCEPTION = {"$ref": "#/components/schemas/OgcException"}
BAD_REQUEST = {
    "description": (
        "The request is invalid: a query parameter is unknown, repeated or has an invalid "
        "value, or the Host header names a host this service does not answer to "
        "(problem details, RFC 7807)."
    ),
    "content": {PROBLEM_JSON: {"schema": _EXCEPTION}},
}
NOT_FOUND = {
    "description": "The collection or feature does not exist (problem details, RFC 7807).",
    "content": {PROBLEM_JSON: {"schema": _EXCEPTION}},
}
SERVER_ERROR = {
    "description": "A server error occurred (problem details, RFC 7807).",
    "content": {PROBLEM_JSON: {"schema": _EXCEPTION}},
}
_HTML_CONTENT = {HTML: {"schema": {"type": "string"}}}

CollectionId = Annotated[
    str, Path(alias="collectionId", description="Id of a collection, as listed at /collections.")
]
FeatureId = Annotated[
    str, Path(alias="featureId", description="Id of a feature: the value of its id attribute.")
]

router = APIRouter()


def _responses(
    model: type | None,
    description: str,
    *,
    not_found: bool = False,
    html: bool = True,
    content: dict[str, Any] | None = None,
) -> dict[int | str, Any]:
    ok: dict[str, Any] = {"description": description}
    if model is not None:
        ok["model"] = model
    if html or content:
        ok["content"] = {**(content or {}), **(_HTML_CONTENT if html else {})}
    out: dict[int | str, Any] = {200: ok, 400: BAD_REQUEST, 500: SERVER_ERROR}
    if not_found:
        out[404] = NOT_FOUND
    return out


def _format_only(*, formats: tuple[str, ...] = JSON_HTML_FORMATS) -> dict[str, Any]:
    return {"parameters": [format_parameter(formats)]}


def _respond(request: Request, document: dict[str, Any], title: str) -> Response:
    """Return a JSON document, or its HTML view when the request asks for HTML."""
    if wants_html(request):
        return html_page(title, document, home=base_url(request))
    return JSONResponse(document)


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


def field_list(info: CollectionInfo) -> list[dict[str, Any]]:
    """Return the fields of a collection as the catalogue declares them, with titles and units.

    Parameters
    ----------
    info
        The collection's metadata.

    Returns
    -------
    list of dict
        One entry per property: ``name``, ``title`` (the indicator title when the build has
        one, else the name), ``type``, ``unit`` (None for labels), ``description`` and, where
        declared, ``extensive`` and ``null_reason``.

    """
    out = []
    for column in info.columns:
        entry: dict[str, Any] = {
            "name": column.name,
            "title": info.titles.get(column.name, column.name),
            "type": column.type,
            "unit": column.unit or None,
            "description": column.description,
        }
        if column.extensive is not None:
            entry["extensive"] = column.extensive
        if column.null_reason:
            entry["null_reason"] = column.null_reason
        out.append(entry)
    return out


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
            link(f"{url}?f=html", "alternate", HTML, "This collection as HTML"),
            link(f"{url}/items", "items", GEOJSON, f"Features of {info.id}"),
            link(f"{url}/queryables", REL_QUERYABLES, SCHEMA_JSON, "Queryable properties"),
            link(f"{url}/sortables", REL_SORTABLES, SCHEMA_JSON, "Sortable properties"),
            link(f"{url}/items?f=csv", "enclosure", CSV.split(";")[0], "Download as CSV"),
            link(f"{url}/items?f=gpkg", "enclosure", GPKG, "Download as GeoPackage"),
        ],
        "numberOfFeatures": info.count,
        "fields": field_list(info),
    }
    if info.diagnosis:
        doc["diagnosis"] = f"{url}/items/{{featureId}}/diagnosis"
    if attribution:
        doc["attribution"] = attribution
    return doc


def _attribution(provider: Provider) -> str | None:
    return "; ".join(provider.info.attribution) or None


@router.get(
    "/",
    summary="Landing page",
    description=(
        "Links to the API definition, the conformance declaration and the collections. "
        "A browser (Accept: text/html) gets the map dashboard instead."
    ),
    operation_id="getLandingPage",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(LandingPage, "The landing page.", html=False),
    dependencies=[Depends(query_checker())],
    openapi_extra=_format_only(formats=("json",)),
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
            link(f"{root_url(request)}/cities", "related", JSON, "The cities served"),
        ],
    }
    attribution = _attribution(provider)
    if attribution:
        doc["attribution"] = attribution
    doc["build"] = {"id": info.build_id, "city": info.city, "finished": info.finished}
    return JSONResponse(doc)


def root_url(request: Request) -> str:
    """Return the URL of the root of the service (without a city's ``/cities/{cityId}``)."""
    prefix: str = getattr(request.app.state, "prefix", "")
    base = base_url(request)
    return base[: -len(prefix)] if prefix and base.endswith(prefix) else base


@router.get(
    "/conformance",
    summary="Conformance declaration",
    description="The conformance classes of OGC API - Features this server implements.",
    operation_id="getConformanceDeclaration",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(ConfClasses, "The conformance classes."),
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra=_format_only(),
)
def conformance(request: Request) -> Response:
    """Return the conformance declaration."""
    return _respond(request, {"conformsTo": CONFORMANCE}, "Conformance")


@router.get(
    "/collections",
    summary="Feature collections",
    description="The public layers of the build with geometry, in the order of its catalogue.",
    operation_id="getCollections",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(Collections, "The collections."),
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra=_format_only(),
)
def collections(request: Request, provider: ProviderDep) -> Response:
    """Return the list of collections."""
    attribution = _attribution(provider)
    url = f"{base_url(request)}/collections"
    doc = {
        "links": [
            link(url, "self", JSON, "This document"),
            link(f"{url}?f=html", "alternate", HTML, "This document as HTML"),
        ],
        "collections": [
            collection_document(request, c, attribution) for c in provider.collections()
        ],
    }
    if wants_html(request):
        rows = [
            {
                "id": {"href": _collection_url(request, c["id"]), "title": c["id"]},
                "title": c["title"],
                "features": c["numberOfFeatures"],
                "items": {"href": c["links"][2]["href"], "title": "items"},
                "description": c["description"],
            }
            for c in doc["collections"]
        ]
        return html_page(
            f"{provider.info.city}: collections",
            {"links": doc["links"], "collections": rows},
            home=base_url(request),
        )
    return JSONResponse(doc)


@router.get(
    "/collections/{collectionId}",
    summary="Describe a collection",
    description=(
        "Metadata of one feature collection: title, description, extent, links, and its "
        "fields with titles, types and units as the build's catalogue declares them."
    ),
    operation_id="describeCollection",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(Collection, "The collection.", not_found=True),
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra=_format_only(),
)
def collection(request: Request, collection_id: CollectionId, provider: ProviderDep) -> Response:
    """Return one collection's metadata."""
    info = provider.collection(collection_id)
    doc = collection_document(request, info, _attribution(provider))
    return _respond(request, doc, info.title)


def _page_url(url: str, query: ItemsQuery, *, offset: int) -> str:
    params: list[tuple[str, Any]] = [("limit", query.limit)]
    if offset:
        params.append(("offset", offset))
    if query.bbox_text is not None:
        params.append(("bbox", query.bbox_text))
    if query.datetime_text is not None:
        params.append(("datetime", query.datetime_text))
    params.extend(query.carried)
    if query.format is not None:
        params.append(("f", query.format))
    return f"{url}?{urlencode(params, safe=',:/', quote_via=quote)}"


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_ITEMS_CONTENT: dict[str, Any] = {
    CSV.split(";")[0]: {"schema": {"type": "string"}},
    GPKG: {"schema": {"type": "string", "format": "binary"}},
}
_ITEMS_DESCRIPTION = (
    "A page of features as GeoJSON in CRS84, with numberMatched, numberReturned and "
    "next/prev links for paging; f=html gives the page as an HTML table. Each collection's "
    "own path /collections/{id}/items also declares its property filters (any queryable "
    "property as a query parameter, property=value, typed from the catalogue), sortby "
    "(sortby=-crime_rate,+unit_id: NULLs last, stored order breaks ties) and properties (the "
    "properties to include). f=csv (geometry as WKT) and f=gpkg download the selected "
    "features: every matching feature, or the page limit/offset name when given."
)


@router.get(
    "/collections/{collectionId}/items",
    summary="Features of a collection",
    description=_ITEMS_DESCRIPTION,
    operation_id="getFeatures",
    tags=["Data"],
    response_class=RawGeoJSONResponse,
    response_model=None,
    responses=_responses(
        FeatureCollectionGeoJSON, "The features.", not_found=True, content=_ITEMS_CONTENT
    ),
    openapi_extra={"parameters": [*ITEMS_PARAMETERS, format_parameter(ITEMS_FORMATS)]},
)
async def items(
    request: Request,
    collection_id: CollectionId,
    query: Annotated[ItemsQuery, Depends(items_query)],
    provider: ProviderDep,
) -> Response:
    """Return a page of features, its HTML view or a download.

    A coroutine: the hot path (a page of pre-serialised features) takes about a millisecond
    and would spend a good part of it hopping to a worker thread; downloads, filters and sorts
    do run in a worker thread.
    """
    if query.format in ("csv", "gpkg"):
        return await run_in_threadpool(_download, request, provider, collection_id, query)
    if query.selection.plain:  # the hot path: pre-serialised features
        page = provider.items(
            collection_id, bbox=query.bbox, offset=query.offset, limit=query.limit
        )
    else:
        page = await run_in_threadpool(
            provider.items,
            collection_id,
            offset=query.offset,
            limit=query.limit,
            selection=query.selection,
        )
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
    if wants_html(request):
        return _items_html(request, provider, collection_id, page.features, links, page)
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
    head, end = b'{"type":"FeatureCollection","features":[', b"]," + tail[1:].encode()
    if query.selection.plain and accepts_gzip(request.headers):
        pages: GzipPages = request.app.state.gzip_pages
        return RawGeoJSONResponse(
            pages.page(head, page.features, end),
            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return RawGeoJSONResponse(b"".join([head, b",".join(page.features), end]))


def _items_html(
    request: Request,
    provider: Provider,
    collection_id: str,
    features: list[bytes],
    links: list[dict[str, str]],
    page: ItemsPage,
) -> HTMLResponse:
    url = _collection_url(request, collection_id)
    rows = []
    for text in features:
        feature = json.loads(text)
        fid = str(feature["id"])
        geometry = feature.get("geometry") or {}
        rows.append(
            {
                "id": {"href": f"{url}/items/{quote(fid, safe='')}", "title": fid},
                "geometry": geometry.get("type"),
                **feature.get("properties", {}),
            }
        )
    view = {
        "links": links,
        "numberMatched": page.number_matched,
        "numberReturned": len(features),
        "features": rows,
    }
    title = f"{provider.collection(collection_id).title}: features"
    return html_page(title, view, home=base_url(request))


def _download(
    request: Request, provider: Provider, collection_id: str, query: ItemsQuery
) -> Response:
    """Return the selected features of a collection as a CSV or GeoPackage file."""
    limit = query.limit if query.limit_given else None
    offset = query.offset if query.limit_given else 0
    frame = provider.frame(collection_id, query.selection, offset=offset, limit=limit)
    slug = provider.info.city.lower().replace(" ", "-")
    name = "".join(ch for ch in f"{slug}-{collection_id}" if ch.isalnum() or ch in "-_") or "data"
    if query.format == "csv":
        table = frame.drop(columns=[frame.geometry.name])
        table["geometry"] = shapely.to_wkt(frame.geometry.values, rounding_precision=7)
        body = table.to_csv(index=False, lineterminator="\n").encode()
        media = CSV
        filename = f"{name}.csv"
    else:
        handle, path = tempfile.mkstemp(suffix=".gpkg")
        os.close(handle)
        try:
            os.unlink(path)
            pyogrio.write_dataframe(frame, path, layer=collection_id, driver="GPKG")
            with open(path, "rb") as stream:
                body = stream.read()
        finally:
            if os.path.exists(path):
                os.unlink(path)
        media = GPKG
        filename = f"{name}.gpkg"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media, headers=headers)


_DIAGNOSIS_DESCRIPTION = (
    "Everything the build says about one feature of a grid (units, hex, hex_r<N>), as one "
    "JSON document: `indicators` (every indicator of the build's indicators table present on "
    "the grid, with title, unit, direction, dimension, tier, method, parameters, weight, "
    "min_input, sources and description; its `value`, `quality` ('value' or 'null'), the "
    "`null_reason` of a NULL from indicator_gaps, the `percentile` of the value on the grid "
    "and the `coverage` of the indicator on the grid); then one key per section the build "
    "may have: `indices` (each *_index with value, unit, `range` p05/p95 and `explanation`), "
    "`peer_group`, `hotspot` (gi_*, lisa_* columns and the hotspots tables), `trend` (time "
    "series, emerging hotspots) and `progress`, each null when the build lacks it, with the "
    "reason in `unavailable`; `other` holds the grid's remaining columns. The response has an "
    "ETag naming the build and Cache-Control; f=html gives an HTML view."
)


@router.get(
    "/collections/{collectionId}/items/{featureId}/diagnosis",
    summary="Diagnosis of one feature",
    description=_DIAGNOSIS_DESCRIPTION,
    operation_id="getDiagnosis",
    tags=["Data"],
    response_model=None,
    responses={
        **_responses(
            None,
            "The diagnosis.",
            not_found=True,
            content={JSON: {"schema": {"type": "object"}}},
        ),
        304: {"description": "Not modified (If-None-Match names the build's ETag)."},
    },
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra=_format_only(),
)
def diagnosis(
    request: Request, collection_id: CollectionId, feature_id: FeatureId, provider: ProviderDep
) -> Response:
    """Return the diagnosis of one feature of a grid."""
    etag = build_etag(provider.info.build_id)
    headers = {"ETag": etag, "Cache-Control": BUILD_CACHE_CONTROL}
    doc = provider.diagnosis(collection_id, feature_id)
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    url = f"{_collection_url(request, collection_id)}/items/{quote(feature_id, safe='')}"
    doc = {
        **doc,
        "city": provider.info.city,
        "links": [
            link(f"{url}/diagnosis", "self", JSON, "This diagnosis"),
            link(f"{url}/diagnosis?f=html", "alternate", HTML, "This diagnosis as HTML"),
            link(url, "item", GEOJSON, "The feature"),
            link(_collection_url(request, collection_id), "collection", JSON, "The collection"),
        ],
    }
    response = _respond(request, doc, f"Diagnosis of {collection_id} {feature_id}")
    response.headers.update(headers)
    return response


@router.get(
    "/collections/{collectionId}/items/{featureId:path}",
    summary="One feature",
    description="One feature as GeoJSON in CRS84 (f=html: its HTML view).",
    operation_id="getFeature",
    tags=["Data"],
    response_class=RawGeoJSONResponse,
    response_model=None,
    responses=_responses(FeatureGeoJSON, "The feature.", not_found=True),
    dependencies=[Depends(query_checker(formats=ITEM_FORMATS))],
    openapi_extra=_format_only(formats=ITEM_FORMATS),
)
def item(
    request: Request, collection_id: CollectionId, feature_id: FeatureId, provider: ProviderDep
) -> Response:
    """Return one feature."""
    feature = provider.item(collection_id, feature_id)
    url = _collection_url(request, collection_id)
    links = [
        link(f"{url}/items/{quote(feature_id, safe='')}", "self", GEOJSON, "This feature"),
        link(url, "collection", JSON, "The collection"),
    ]
    info = provider.collection(collection_id)
    if info.diagnosis:
        target = f"{url}/items/{quote(feature_id, safe='')}/diagnosis"
        links.append(link(target, "describedby", JSON, "Diagnosis of this feature"))
    if wants_html(request):
        doc = json.loads(feature)
        view = {
            "links": links,
            "geometry": (doc.get("geometry") or {}).get("type"),
            "properties": [
                {"name": k, "title": info.titles.get(k, k), "value": v}
                for k, v in (doc.get("properties") or {}).items()
            ],
        }
        return html_page(f"{info.title}: {feature_id}", view, home=base_url(request))
    tail = json.dumps(links, ensure_ascii=False, separators=(",", ":"))
    return RawGeoJSONResponse(feature[:-1] + b',"links":' + tail.encode() + b"}")


def _schema(request: Request, info: CollectionInfo, kind: str, *, geometry: bool) -> dict[str, Any]:
    """Return the queryables or sortables of a collection as a JSON Schema (Part 3)."""
    url = _collection_url(request, info.id)
    properties: dict[str, Any] = {}
    for column in queryables(info):
        entry: dict[str, Any] = {
            "title": info.titles.get(column.name, column.name),
            "description": column.description,
            "type": QUERYABLE_TYPES[column.type],
        }
        if column.unit:
            entry["x-ogc-unit"] = column.unit
        properties[column.name] = entry
    if geometry:
        properties["geometry"] = {
            "title": "Geometry",
            "description": "The feature's geometry, queryable with bbox.",
            "format": "geometry-any",
            "x-ogc-role": "primary-geometry",
        }
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{url}/{kind}",
        "type": "object",
        "title": f"{info.title}: {kind}",
        "description": (
            f"The {kind} of collection '{info.id}'"
            + (
                ": each property can be given as a query parameter of the items, "
                "property=value, for features whose value equals it."
                if kind == "queryables"
                else ": each property can be named in sortby (+name ascending, -name descending)."
            )
        ),
        "properties": properties,
        "additionalProperties": False,
    }


def _schema_response(request: Request, document: dict[str, Any]) -> Response:
    if wants_html(request):
        rows = [{"name": k, **v} for k, v in document["properties"].items()]
        view = {"description": document["description"], "properties": rows}
        return html_page(document["title"], view, home=base_url(request))
    return JSONResponse(document, media_type=SCHEMA_JSON)


_SCHEMA_CONTENT = {SCHEMA_JSON: {"schema": {"type": "object"}}}


@router.get(
    "/collections/{collectionId}/queryables",
    summary="Queryables of a collection",
    description=(
        "The properties that can filter the items (OGC API - Features Part 3), as a JSON "
        "Schema: their titles, types and units. Each is a query parameter of the items: "
        "name=value keeps the features whose property equals the value."
    ),
    operation_id="getQueryables",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(None, "The queryables.", not_found=True, content=_SCHEMA_CONTENT),
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra=_format_only(),
)
def collection_queryables(
    request: Request, collection_id: CollectionId, provider: ProviderDep
) -> Response:
    """Return the queryables of a collection."""
    info = provider.collection(collection_id)
    return _schema_response(request, _schema(request, info, "queryables", geometry=True))


@router.get(
    "/collections/{collectionId}/sortables",
    summary="Sortables of a collection",
    description="The properties the items can be sorted by with sortby, as a JSON Schema.",
    operation_id="getSortables",
    tags=["Capabilities"],
    response_model=None,
    responses=_responses(None, "The sortables.", not_found=True, content=_SCHEMA_CONTENT),
    dependencies=[Depends(query_checker(formats=JSON_HTML_FORMATS))],
    openapi_extra=_format_only(),
)
def collection_sortables(
    request: Request, collection_id: CollectionId, provider: ProviderDep
) -> Response:
    """Return the sortables of a collection."""
    info = provider.collection(collection_id)
    return _schema_response(request, _schema(request, info, "sortables", geometry=False))


def collection_paths(document: dict[str, Any], infos: list[CollectionInfo]) -> None:
    """Add each collection's own items path to an OpenAPI document, with its typed filters.

    OGC API - Features Part 1 (7.15.5) asks for parameters filtering on feature properties to
    be declared on the collection's own path; each ``/collections/{id}/items`` copies the
    generic operation and adds the collection's property filters (:func:`filter_parameters`),
    ``sortby`` and ``properties`` with the names of that collection.

    Parameters
    ----------
    document
        The OpenAPI 3.0 document, modified in place.
    infos
        The collections served.

    """
    paths = document.get("paths", {})
    generic = paths.get("/collections/{collectionId}/items", {}).get("get")
    if generic is None:
        return
    for info in infos:
        operation = copy.deepcopy(generic)
        operation["operationId"] = (
            f"getFeatures_{''.join(c if c.isalnum() else '_' for c in info.id)}"
        )
        operation["summary"] = f"Features of {info.id}"
        parameters = [p for p in operation.get("parameters", []) if p.get("name") != "collectionId"]
        fmt = [p for p in parameters if p.get("name") == "f"]
        parameters = [p for p in parameters if p.get("name") != "f"]
        parameters += [sortby_parameter(info), properties_parameter(info), *filter_parameters(info)]
        operation["parameters"] = parameters + fmt
        paths[f"/collections/{quote(info.id, safe='')}/items"] = {"get": operation}
