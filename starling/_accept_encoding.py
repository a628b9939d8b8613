"""Accept-Encoding (RFC 9110 §12.5.3): parsing, and choosing the coding to send.

    Accept-Encoding = #( codings [ weight ] )
    codings         = content-coding / "identity" / "*"
    weight          = OWS ";" OWS "q=" qvalue
    qvalue          = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )

Sans-IO and bounded: the header's values (several headers are one list) go in, a mapping of
coding to weight comes out. At most ``MAX_ACCEPT_ENCODING_ITEMS`` list members are read and the
rest is never looked at, and a member over ``MAX_MEMBER_LENGTH`` characters is skipped unread,
so any input costs about what a benign header of its length costs.
Weights are kept as whole thousandths (0 to 1000), compared exactly, never as floats.

Deliberately lenient, as browsers and servers are: empty list members are skipped, and a member
that does not follow the grammar (a bad token, a q-value like ``2``, ``1e3`` or ``nan``, other
parameters) is ignored rather than failing the whole header; ``x-gzip`` counts as ``gzip``
(RFC 9110 §8.4.1.3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# A real header lists a handful of codings: anything past this many members is ignored.
MAX_ACCEPT_ENCODING_ITEMS = 64
# A member ("gzip;q=0.5") longer than this names no coding anyone uses: ignored unread, so that
# no member costs more than this to look at, however long the header.
MAX_MEMBER_LENGTH = 128

# RFC 9110 §5.6.2 token; matched with fullmatch.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# "q=" qvalue, the "q" case-insensitive (RFC 9110 §12.4.2).
_WEIGHT = re.compile(r"[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")
_OWS = " \t"  # never str.strip()'s default, which also takes CR, LF and other controls


def _thousandths(qvalue: str) -> int:
    whole, _, fraction = qvalue.partition(".")
    return int(whole) * 1000 + int(fraction.ljust(3, "0"))


def parse_accept_encoding(values: Iterable[bytes]) -> dict[str, int]:
    """Each coding listed (lower case) and its weight in thousandths, first mention winning."""
    text = b",".join(values).decode("latin-1")
    members = text.split(",", MAX_ACCEPT_ENCODING_ITEMS)[:MAX_ACCEPT_ENCODING_ITEMS]
    weights: dict[str, int] = {}
    for member in members:
        if len(member) > MAX_MEMBER_LENGTH:
            continue
        coding, semicolon, parameter = member.partition(";")
        coding = coding.strip(_OWS).lower()
        if not coding:
            continue  # an empty list member ("gzip, , br")
        if _TOKEN.fullmatch(coding) is None:
            continue
        if semicolon:
            weight = _WEIGHT.fullmatch(parameter.strip(_OWS))
            if weight is None:
                continue  # not a weight (or more than one parameter): not understood
            quality = _thousandths(weight.group(1))
        else:
            quality = 1000
        if coding == "x-gzip":
            coding = "gzip"
        weights.setdefault(coding, quality)
    return weights


def choose_coding(weights: dict[str, int], available: Sequence[str]) -> str | None:
    """The coding of ``available`` to send (ties go to the earliest), or None for identity.

    A coding not listed takes the weight of ``*`` if that is listed, else it is not acceptable;
    a weight of 0 refuses. An ``identity`` listed with a greater weight than the best coding
    wins (the client would rather have the body as it is).
    """
    if not weights:
        return None  # PERF: no header, or nothing readable in it
    star = weights.get("*", 0)
    best: str | None = None
    best_quality = 0
    for coding in available:
        quality = weights.get(coding, star)
        if quality > best_quality:
            best, best_quality = coding, quality
    if best is not None and weights.get("identity", -1) > best_quality:
        return None
    return best
