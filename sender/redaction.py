"""Hiding secrets in text a server sent back, however it cut them up.

A careless or hostile server may echo what it was sent at AUTH: the password, the
bearer token, or their base64 as sent or re-encoded, split over ``535-`` continuation
lines. Line by line, or in the reply with its line breaks turned into spaces, no piece
is the secret, so a plain ``str.replace`` misses it. ``Redactor`` therefore searches a
copy of the text without white space and without the enhanced status code servers put
at the start of each line (``5.7.8``), and hides the whole stretch of the original text
the secret spans.

A secret inside a longer base64 string (``\\0user\\0password`` sent with PLAIN, the
XOAUTH2 string around a token) is encoded differently depending on where it starts
modulo 3. For each of the three alignments the characters that depend on the secret
alone are searched for, and the group of four characters on either side, which mixes
the secret with its neighbours, is hidden with it.

The secret itself is also found in any other letter case (a server may echo it upper-
or lower-cased). Its base64 forms are matched exactly: base64 in another case decodes to
other bytes, so it reveals nothing, and folding case there would only hide unrelated text.
Pieces are found across white space, line breaks and status codes; a secret cut up with
other characters in between (quotes, commas, hyphens) or re-encoded otherwise (hex,
quoted-printable, URL encoding) is not recognised: no search for those could tell a
secret from ordinary words.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass

HIDDEN = "[hidden]"
BASE64_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
# What may come between two pieces of an echoed secret: white space and line breaks,
# and the enhanced status code (RFC 3463) a server repeats on each continuation line.
BETWEEN_PIECES = re.compile(r"\s+|(?<!\S)[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")
# Base64 shorter than one group of four characters would hide ordinary words.
MIN_BASE64_CORE = 4
SASL_EMPTY_RESPONSE = "="  # what a client sends for an empty response: not a secret


@dataclass(frozen=True)
class SecretForm:
    """One way a secret may appear: ``text`` (without white space), whether the base64
    group just before or just after it holds part of the secret too, and whether it is
    searched for in any letter case (``text`` is then lower case)."""

    text: str
    mixed_before: bool = False
    mixed_after: bool = False
    any_case: bool = False


def secret_forms(secret: str) -> list[SecretForm]:
    """The secret itself, and its base64 (standard and URL-safe) at each alignment."""
    forms = []
    literal = "".join(secret.split())
    if literal:
        forms.append(SecretForm(_lower(literal), any_case=True))
    data = secret.encode("utf-8")
    for offset in range(3):
        whole_groups_end = (offset + len(data)) // 3 * 4
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + data).decode("ascii")
            # The first group mixes in ``offset`` bytes before the secret; the last one,
            # when the secret does not end on a group boundary, bytes after it.
            core = encoded[4 if offset else 0 : whole_groups_end]
            if len(core) >= MIN_BASE64_CORE:
                forms.append(
                    SecretForm(
                        core,
                        mixed_before=offset > 0,
                        mixed_after=(offset + len(data)) % 3 != 0,
                    )
                )
    return list(dict.fromkeys(forms))


class Redactor:
    """Replaces every secret it was given, and their base64 forms, with "[hidden]"."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.forms: list[SecretForm] = []
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Hide these too from now on (empty values and a lone "=" are ignored)."""
        for secret in secrets:
            if secret and secret != SASL_EMPTY_RESPONSE:
                self.forms.extend(f for f in secret_forms(secret) if f not in self.forms)

    def redact(self, text: str) -> str:
        """``text`` with every stretch that holds a secret replaced by "[hidden]"."""
        if not text or not self.forms:
            return text
        compact, positions = _compact(text)
        lowered = _lower(compact)
        spans: list[tuple[int, int]] = []
        for form in self.forms:
            searched = lowered if form.any_case else compact
            found = searched.find(form.text)
            while found != -1:
                end = found + len(form.text)
                start = _extend_back(compact, found) if form.mixed_before else found
                stop = _extend_forward(compact, end) if form.mixed_after else end
                spans.append((start, stop))
                found = searched.find(form.text, end)
        if not spans:
            return text
        pieces, copied_to = [], 0
        for start, stop in _merged(spans):
            pieces.append(text[copied_to : positions[start]])
            pieces.append(HIDDEN)
            copied_to = positions[stop - 1] + 1
        pieces.append(text[copied_to:])
        return "".join(pieces)


def _compact(text: str) -> tuple[str, list[int]]:
    """``text`` without what may separate pieces, and where each kept character came from."""
    kept: list[str] = []
    positions: list[int] = []
    copied_to = 0
    for gap in BETWEEN_PIECES.finditer(text):
        kept.append(text[copied_to : gap.start()])
        positions.extend(range(copied_to, gap.start()))
        copied_to = gap.end()
    kept.append(text[copied_to:])
    positions.extend(range(copied_to, len(text)))
    return "".join(kept), positions


def _lower(text: str) -> str:
    """``text`` in lower case, character for character (so positions still match)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters lower to two ("İ"): those keep their case.
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _extend_back(compact: str, start: int) -> int:
    # The group of four before: it holds the secret's first bytes.
    limit = max(0, start - 4)
    while start > limit and compact[start - 1] in BASE64_CHARACTERS:
        start -= 1
    return start


def _extend_forward(compact: str, end: int) -> int:
    # The group of four after (it holds the secret's last bytes), and its padding.
    limit = min(len(compact), end + 4)
    while end < limit and (compact[end] in BASE64_CHARACTERS or compact[end] == "="):
        end += 1
    while end < len(compact) and compact[end] == "=":
        end += 1
    return end


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return merged
