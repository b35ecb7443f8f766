"""One rule for every stored text, applied before a value reaches SQL, the same on SQLite and PostgreSQL.

Why here: SQLite stores any length and any character, PostgreSQL refuses more than a column's length
(``StringDataRightTruncation``) and NUL characters (``DataError``), and its error carries the statement's
parameters (a new reader's argon2 code hash among them). So a value is checked against the column before
any statement is sent: its length in characters, and its characters. Refused: C0/C1 control characters
(a text that may hold several lines keeps new line, carriage return and tab), the bidirectional controls
(U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C: they can make "exe.txt" display as "txt.exe"),
line/paragraph separators, zero-width spaces and the byte-order mark, unpaired surrogates (not encodable as
UTF-8) and non-characters. Joiners (U+200C, U+200D) stay: Persian and Indic names and emoji need them.

The entry points (study configuration, readers, reasons, answers) call :func:`check` with the field's name
in the user's words, so the message says which field and what to do; ``study.storage.models`` runs
:func:`column_problem` on every string column of every row before a flush, a safety net for any path that
forgot (its message names the table and column). Neither ever repeats the value.
"""

from __future__ import annotations

import unicodedata

BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
INVISIBLE = frozenset("\u200b\u2060\ufeff\u2028\u2029\u180e")
MULTILINE_OK = frozenset("\n\r\t")


class TextInvalid(ValueError):
    """A text value that cannot be stored; the message names the field and says what to do."""

    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def _codepoint(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def char_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` holds a character no stored text may hold, or None."""
    for ch in value:
        if ch.isprintable() and ch not in BIDI and ch not in INVISIBLE:
            continue  # the common case: one test per character
        if multiline and ch in MULTILINE_OK:
            continue
        if ch in BIDI:
            return (f"contains a bidirectional control character ({_codepoint(ch)}), which can make text show "
                    "in a misleading order: remove it")
        category = unicodedata.category(ch)
        if category == "Zs" or ch in "\u200c\u200d":  # spaces (U+00A0, U+3000, ...) and joiners
            continue
        if category == "Cs":
            return "contains an unpaired surrogate (not valid Unicode text): type or paste it again"
        if category in ("Cc", "Zl", "Zp"):
            what = "a line break or tab" if ch in MULTILINE_OK | {"\u2028", "\u2029", "\x85", "\x0b", "\x0c"} \
                else "a control character"
            return f"contains {what} ({_codepoint(ch) if ch != chr(0) else 'U+0000 NUL'}): remove it"
        if ch in INVISIBLE or category in ("Cf", "Cn"):
            return f"contains an invisible or unassigned character ({_codepoint(ch)}): remove it"
    return None


def problem(value: str, max_chars: int | None, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be stored in a field of at most ``max_chars`` characters, or None."""
    if max_chars is not None and len(value) > max_chars:
        return f"{len(value):,} characters long, at most {max_chars:,} allowed: shorten it"
    return char_problem(value, multiline=multiline)


def check(value, field: str, max_chars: int | None, *, multiline: bool = False, required: bool = True,
          strip: bool = True) -> str | None:
    """``value`` (stripped) when it can be stored as ``field``; :class:`TextInvalid` naming the field otherwise.
    None (or an empty text) is None unless ``required``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise TextInvalid(field, "must not be empty")
        return None
    if not isinstance(value, str):
        raise TextInvalid(field, f"must be text, got {type(value).__name__}")
    text = value.strip() if strip else value
    why = problem(text, max_chars, multiline=multiline)
    if why is not None:
        raise TextInvalid(field, why)
    return text


def shown(value, limit: int = 60) -> str:
    """A value quoted for a message, shortened, with any character the rules refuse written as an escape
    (a message never echoes a megabyte, a bidirectional override or a NUL)."""
    text = ascii(value) if isinstance(value, str) and char_problem(value) else repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"


TEXT_COLUMN_MAX_CHARS = 1_000_000  # a Text column without a length (a study's TOML, a reason): a generous cap


def column_problem(value: str, length: int | None, *, text_column: bool) -> str | None:
    """Why a value cannot go into a string column of ``length`` characters (``text_column``: a Text column,
    several lines allowed), or None: the models' safety net before every flush."""
    return problem(value, length if length is not None else TEXT_COLUMN_MAX_CHARS, multiline=text_column)
