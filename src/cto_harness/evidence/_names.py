"""File names and other agent-chosen text, recorded losslessly and safely.

A name is bytes on Linux: it may be invalid UTF-8, hold a newline, a terminal escape or a
bidi override. ``escape_name`` turns it into printable text that JSON can carry and a
reader can trust line by line, and ``unescape_name`` gives the exact bytes back:

- valid, printable UTF-8 stays as it is;
- ``\\`` becomes ``\\\\``;
- a byte that is not UTF-8 becomes ``\\xNN``;
- control, format and separator characters become ``\\n``, ``\\t``, ``\\r``, ``\\xNN``,
  ``\\uNNNN`` or ``\\UNNNNNNNN``.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Any

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|n|t|r|\\)")


def to_bytes(text: str | bytes) -> bytes:
    """The bytes a str from the OS (``surrogateescape``-decoded) stands for."""
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "surrogateescape" if _only_escape_surrogates(text) else "surrogatepass")


def _only_escape_surrogates(text: str) -> bool:
    return all(not 0xD800 <= ord(ch) <= 0xDFFF or 0xDC80 <= ord(ch) <= 0xDCFF for ch in text)


def escape_name(name: str | bytes) -> str:
    """Printable, lossless text for a name (see the module docstring)."""
    raw = to_bytes(name)
    if raw.isascii() and raw.isalnum():
        return raw.decode()
    out: list[str] = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in _NAMED:
            out.append(_NAMED[ch])
        elif code < 0x80 and (code < 0x20 or code == 0x7F):
            out.append(f"\\x{code:02x}")
        elif code >= 0x80 and unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape_name(text: str) -> bytes:
    """The exact bytes ``escape_name`` was given."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        out += text[pos:match.start()].encode()
        token = match.group(1)
        if token[0] == "x":
            out.append(int(token[1:], 16))
        elif token[0] in "uU":
            out += chr(int(token[1:], 16)).encode("utf-8", "surrogatepass")
        else:
            out += {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}[token]
        pos = match.end()
    out += text[pos:].encode()
    return bytes(out)


def json_safe(value: Any) -> Any:
    """``value`` with every str that JSON/UTF-8 cannot carry (lone surrogates) escaped.

    Strings that encode cleanly are returned unchanged, so ordinary reports are byte-identical.
    A JSON-like value with nothing to escape (the usual case) is returned as it is, after
    one pass of the C encoder.
    """
    if isinstance(value, dict | list):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError):
            pass
        else:
            return value
    return _json_safe(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        value = os.fsdecode(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return escape_name(value)
        return value
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
