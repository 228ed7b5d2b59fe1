"""Response header values built from caller input: always valid, always small.

`x-gateway-dropped-params` lists the body keys the gateway left out, and those keys are
whatever the caller wrote: a newline would split the header (or make the ASGI server drop
the connection), a character outside Latin-1 cannot be encoded at all (a 500 after the call
was billed), and 15,000 of them made a 705 KB header (issue 19, item 11; the fuzz suite
found the first two). So a listed name is percent-encoded outside printable ASCII (and `,`
and `%`, which would make the list ambiguous), cut to `NAME_CHARS` characters once
encoded, and at most `shown` names are listed, then how many more there were: the value
stays under 2 KB whatever the body held.

`x-request-id` is the caller's own when it is short and printable, else one of ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote

__all__ = ["NAMES_SHOWN", "NAME_CHARS", "name_list", "request_id_from"]

NAMES_SHOWN = 20
NAME_CHARS = 96

# Printable ASCII other than `,` and `%`: what may stand in the list as it is.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ",%")


def name_list(names: Sequence[str], *, shown: int = NAMES_SHOWN) -> str:
    """`a,b,c` or `a,b,(+n more)`: a header value that any HTTP stack can send."""
    listed = [_encoded(name) for name in names[:shown]]
    more = len(names) - shown
    return ",".join([*listed, f"(+{more} more)"] if more > 0 else listed)


def _encoded(name: str) -> str:
    text = quote(name[:NAME_CHARS], safe=_SAFE)[:NAME_CHARS]
    return _PARTIAL_ESCAPE.sub("", text)  # never end in half a `%XX`


_PARTIAL_ESCAPE = re.compile(r"%[0-9A-F]?$")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The caller's `x-request-id`, when it is one we may echo and log; else None."""
    for key, value in headers:
        if key == b"x-request-id":
            text: str = value.decode("latin-1")
            # A caller's id is echoed back and logged: keep it short and printable.
            if 0 < len(text) <= 128 and text.isprintable():
                return text
            return None
    return None
