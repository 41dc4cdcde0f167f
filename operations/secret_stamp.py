"""
The stamp that tells whether a secret map is still what lockdown wrote, without a fast
digest of the secret ever leaving the controller.

A fast digest of ``"<relayhost> <login>:<password>"`` printed by ``-vvv`` lets anyone with
the log and the (usually known) relayhost and login test billions of password guesses per
second. The stamp instead holds a random salt and a scrypt key of the content (N=2^14, r=8,
p=1: ~16 MiB and tens of milliseconds per try, the scrypt paper's interactive setting), so
checking one guess costs what the controller spends once per credential and run. The fact
prints the key only while the map is untouched since that write (compared on the host,
``facts.postfix.SecretFileState``); a hand edit makes the stamp "edited" and the map is
rewritten without computing anything.

What the controller pays, at any fleet size (docs/design.md, "Is the SASL map current?"):

- **One salt per content per run.** Every map a run writes with the same content gets the
  same salt, so the same stamp: a fleet written in one run is checked with ONE key
  derivation. A run that finds a stamp of the wanted content adopts its salt for the maps it
  writes, so hosts added later join that salt instead of bringing one each.
- **Any older salt is still recognised** (a per-host salt of an earlier lockdown, another
  run's): a matching stamp is current whatever its salt, so upgrading rewrites no map.
- **Each (salt, content) is derived once per process**, and the derivation runs in gevent's
  thread pool (``hashlib.scrypt`` releases the GIL): the greenlet that asked waits, every
  other host's SSH traffic goes on. Greenlets asking for the same key wait for one result.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import weakref

from pyinfra.context import ctx_state

SCHEME = "scrypt-14-8-1"
_PARAMETERS = {SCHEME: {"n": 2 ** 14, "r": 8, "p": 1}}
_MAXMEM = 64 * 1024 * 1024

# content -> salt, per pyinfra run (its State); outside a run (a script, a test) per process
_RUN_SALTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_NO_RUN_SALTS: dict[str, str] = {}
# (scheme, salt, content) -> a result with .get(): the key, derived once per process
_DERIVED: dict[tuple[str, str, str], object] = {}


def new_salt() -> str:
    return secrets.token_hex(16)


def new_stamp(content: str) -> str:
    """``"<scheme> <salt> <key>"`` for ``content``, with this run's salt for that content."""
    salt = _run_salts().setdefault(content, new_salt())
    return f"{SCHEME} {salt} {_key(SCHEME, salt, content)}"


def stamp_matches(stamp: str | None, content: str) -> bool:
    """Whether ``stamp`` (a ``SecretFileState`` stamp) was made from ``content``."""
    fields = (stamp or "").split()
    if len(fields) != 3 or fields[0] not in _PARAMETERS:
        return False  # none, or another scheme: rewrite once with this one
    scheme, salt, key = fields
    try:
        matches = hmac.compare_digest(key, _key(scheme, salt, content))
    except ValueError:  # a salt that is not hex: not a stamp lockdown wrote
        return False
    if matches and scheme == SCHEME:
        _run_salts().setdefault(content, salt)  # maps written later in this run share it
    return matches


def derivations() -> int:
    """How many keys this process has derived (or is deriving): what a run paid in scrypt."""
    return len(_DERIVED)


def _run_salts() -> dict[str, str]:
    state = ctx_state.get()
    if state is None:
        return _NO_RUN_SALTS
    return _RUN_SALTS.setdefault(state, {})


def _key(scheme: str, salt: str, content: str) -> str:
    wanted = (scheme, salt, content)
    if wanted not in _DERIVED:
        bytes.fromhex(salt)  # ValueError here, before anything is cached or started
        _DERIVED[wanted] = _off_the_event_loop(_derive, scheme, salt, content)
    return _DERIVED[wanted].get()


def _derive(scheme: str, salt: str, content: str) -> str:
    return hashlib.scrypt(content.encode(), salt=bytes.fromhex(salt), dklen=32,
                          maxmem=_MAXMEM, **_PARAMETERS[scheme]).hex()


class _Done:
    def __init__(self, value: str):
        self.value = value

    def get(self) -> str:
        return self.value


_POOL = []  # one gevent ThreadPool of the process, made on first use


def _off_the_event_loop(function, *args):
    """``function(*args)`` in a thread pool of its own when gevent runs the process (pyinfra's
    CLI patches threading), so only the asking greenlet waits; else at once. Not the hub's
    pool: gevent resolves host names there, and a queue of keys must not hold up connects."""
    from gevent import monkey

    if not monkey.is_module_patched("threading"):
        return _Done(function(*args))
    if not _POOL:
        from gevent.threadpool import ThreadPool

        _POOL.append(ThreadPool(max(1, min(4, os.cpu_count() or 1))))
    return _POOL[0].spawn(function, *args)
