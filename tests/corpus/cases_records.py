"""stub."""

CASES: list = []
