"""What a client of a local endpoint sees: shared by the tests that serve a model named "m" on the local cloud."""

from __future__ import annotations

from selfheal.localcloud.hosting import HostingService, ModelError


def answer(hosting: HostingService, body: bytes, content_type: str | None = "text/csv",
           accept: str | None = "text/csv") -> tuple[int, str | None, str]:
    """(status, content type, body) as the client sees them."""
    try:
        out, out_type, _ = hosting.invoke("m", body, content_type, accept)
    except ModelError as error:
        return error.original_status_code, None, error.original_message
    return 200, out_type, out.decode()
