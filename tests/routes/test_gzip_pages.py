"""Items pages sent gzip-compressed from features compressed once (api.responses.GzipPages)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from fastapi.testclient import TestClient

from api.responses import GzipPages, accepts_gzip


@pytest.mark.parametrize("count", [0, 1, 7])
def test_a_page_is_one_valid_gzip_member(count: int) -> None:
    features = [json.dumps({"id": i, "v": "x" * (i * 50)}).encode() for i in range(count)]
    pages = GzipPages()
    body = pages.page(b'{"features":[', features, b"]}")
    expected = b'{"features":[' + b",".join(features) + b"]}"
    assert gzip.decompress(body) == expected  # checks the CRC-32 and the size too
    # a single-member reader (zlib with a gzip header) reads the whole stream
    assert zlib.decompress(body, wbits=31) == expected
    assert pages.page(b"[", features, b"]") == pages.page(b"[", features, b"]")


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip, deflate", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("*", True),
        ("", False),
        ("gzip;q=abc", False),
    ],
)
def test_accept_encoding(header: str, accepted: bool) -> None:
    assert accepts_gzip({"accept-encoding": header}) is accepted


def test_items_gzip_and_identity_bodies_agree(client: TestClient) -> None:
    for offset in (0, 3):
        url = f"/collections/hex/items?limit=5&offset={offset}"
        packed = client.get(url, headers={"Accept-Encoding": "gzip"})
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert packed.headers["content-encoding"] == "gzip"
        assert "content-encoding" not in plain.headers
        a, b = packed.json(), plain.json()
        a.pop("timeStamp"), b.pop("timeStamp")
        assert a == b and a["features"]
