"""Helper of the lab tests (no tests here).

Every value an output or a readable file must not hold: a secret, and anything derived
from it fast enough to check a guess against (issue 14 item 7).

The forms are what a relay secret looks like in lockdown (the password, ``login:password``,
the SASL map line with and without its newline) and on the wire (AUTH PLAIN / LOGIN base64);
each is hashed with every fast digest hashlib offers, in hex and base64. A salted scrypt key
(the map's stamp, secret_stamp.py) is by design not among them.
"""
from __future__ import annotations

import base64
import hashlib

FAST_DIGESTS = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3_256", "sha3_512",
                "blake2b", "blake2s")


def secret_forms(relayhost: str, login: str, password: str) -> dict[str, bytes]:
    line = f"{relayhost} {login}:{password}"
    return {"password": password.encode(), "login:password": f"{login}:{password}".encode(),
            "map line": line.encode(), "map line + newline": (line + "\n").encode()}


def needles(relayhost: str, login: str, password: str) -> dict[str, str]:
    """``{text to search for: what it is}``; the texts are searched case-insensitively."""
    found = {password: "the password",
             base64.b64encode(f"\0{login}\0{password}".encode()).decode(): "AUTH PLAIN base64",
             base64.b64encode(password.encode()).decode(): "AUTH LOGIN base64 of the password"}
    for label, form in secret_forms(relayhost, login, password).items():
        for name in FAST_DIGESTS:
            digest = hashlib.new(name, form).digest()
            what = f"{name} of the {label}"
            found[digest.hex()] = what + " (hex)"
            found[base64.b64encode(digest).decode()] = what + " (base64)"
    return found


def leaks(text: str, searched: dict[str, str]) -> list[str]:
    """What of ``searched`` (a ``needles()`` result) occurs in ``text``."""
    lowered = text.lower()
    return sorted({what for needle, what in searched.items()
                   if (needle.lower() in lowered if _is_hex(needle) else needle in text)})


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
