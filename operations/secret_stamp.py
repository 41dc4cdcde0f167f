"""
The stamp that tells whether a secret map is still what lockdown wrote, without a fast
digest of the secret ever leaving the controller.

A fast digest of ``"<relayhost> <login>:<password>"`` printed by ``-vvv`` lets anyone with
the log and the (usually known) relayhost and login test billions of password guesses per
second. The stamp instead holds a per-write random salt and a scrypt key of the content
(N=2^14, r=8, p=1: ~16 MiB and tens of milliseconds per try, the scrypt paper's interactive
setting), so checking one guess costs what the controller spends once per host and run. The
fact prints the key only while the map is untouched since that write (compared on the host,
``facts.postfix.SecretFileState``); a hand edit makes the stamp "edited" and the map is
rewritten without computing anything.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import lru_cache

SCHEME = "scrypt-14-8-1"
_PARAMETERS = {SCHEME: {"n": 2 ** 14, "r": 8, "p": 1}}
_MAXMEM = 64 * 1024 * 1024


def new_salt() -> str:
    return secrets.token_hex(16)


def new_stamp(content: str) -> str:
    """``"<scheme> <salt> <key>"`` for ``content``, with a fresh random salt."""
    salt = new_salt()
    return f"{SCHEME} {salt} {_key(SCHEME, salt, content)}"


def stamp_matches(stamp: str | None, content: str) -> bool:
    """Whether ``stamp`` (a ``SecretFileState`` stamp) was made from ``content``."""
    fields = (stamp or "").split()
    if len(fields) != 3 or fields[0] not in _PARAMETERS:
        return False  # none, or another scheme: rewrite once with this one
    scheme, salt, key = fields
    try:
        return hmac.compare_digest(key, _key(scheme, salt, content))
    except ValueError:  # a salt that is not hex: not a stamp lockdown wrote
        return False


@lru_cache(maxsize=64)  # the deploy and the audit of one run check the same stamp
def _key(scheme: str, salt: str, content: str) -> str:
    return hashlib.scrypt(content.encode(), salt=bytes.fromhex(salt), dklen=32,
                          maxmem=_MAXMEM, **_PARAMETERS[scheme]).hex()
