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
- **Started before the state read.** The controller remembers the salt it last wrote or found
  for each map's keys (the relays, public: main.cf names them) in a 0600 file of its cache
  (``$XDG_CACHE_HOME/pyinfra-lockdown/stamp-salts.json``); ``prefetch`` starts that key's
  derivation while the state read is on the wire, so a converged host's check finds it done.
  A salt is not secret (``-vvv`` prints it in the stamp); a missing, stale or tampered file
  only costs the derivation it would have saved.
"""
from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import os
import secrets
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinfra.context import ctx_state

SCHEME = "scrypt-14-8-1"
_PARAMETERS = {SCHEME: {"n": 2 ** 14, "r": 8, "p": 1}}
_MAXMEM = 64 * 1024 * 1024

# content -> salt, per pyinfra run (its State); outside a run (a script, a test) per process
_RUN_SALTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NO_RUN_SALTS: dict[str, str] = {}
# (scheme, salt, content) -> a result with .get(): the key, derived once per process
_DERIVED: dict[tuple[str, str, str], object] = {}


def new_salt() -> str:
    return secrets.token_hex(16)


def new_stamp(content: str) -> str:
    """``"<scheme> <salt> <key>"`` for ``content``, with this run's salt for that content."""
    salt = _run_salts().setdefault(content, new_salt())
    stamp = f"{SCHEME} {salt} {_key(SCHEME, salt, content)}"
    _remember(content, salt)
    return stamp


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
        _remember(content, salt)
    return matches


def prefetch(content: str) -> None:
    """Start deriving ``content``'s key with the salt this controller last saw for the same map
    keys, so that ``stamp_matches`` after the state read does not wait for it."""
    salt = _remembered_salts().get(_public_label(content))
    if salt is not None:
        _start(SCHEME, salt, content)


def derivations() -> int:
    """How many keys this process has derived (or is deriving): what a run paid in scrypt."""
    return len(_DERIVED)


def _run_salts() -> dict[str, str]:
    state = ctx_state.get()
    if state is None:
        return _NO_RUN_SALTS
    return _RUN_SALTS.setdefault(state, {})


def _key(scheme: str, salt: str, content: str) -> str:
    return _start(scheme, salt, content).get()


def _start(scheme: str, salt: str, content: str) -> Any:
    wanted = (scheme, salt, content)
    if wanted not in _DERIVED:
        bytes.fromhex(salt)  # ValueError here, before anything is cached or started
        _DERIVED[wanted] = _off_the_event_loop(_derive, scheme, salt, content)
    return _DERIVED[wanted]


# The remembered salts: {public label of a map's content: salt}, loaded once per process.
_REMEMBERED: list[dict[str, str]] = []


def _public_label(content: str) -> str:
    """The map's keys (``[relay]:port`` per line: what main.cf names anyway), never a value."""
    return " ".join(sorted(line.split(None, 1)[0] for line in content.splitlines() if line.strip()))


def _salts_file() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "pyinfra-lockdown" / "stamp-salts.json"


def _remembered_salts() -> dict[str, str]:
    if not _REMEMBERED:
        try:
            loaded = json.loads(_salts_file().read_text())
        except (OSError, ValueError, TypeError):  # TypeError: a test's patched filesystem
            loaded = {}
        _REMEMBERED.append({
            label: salt for label, salt in (loaded.items() if isinstance(loaded, dict) else ())
            if isinstance(label, str) and isinstance(salt, str) and _is_salt(salt)
        })
    return _REMEMBERED[0]


def _is_salt(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _remember(content: str, salt: str) -> None:
    salts = _remembered_salts()
    label = _public_label(content)
    if salts.get(label) == salt or not _is_salt(salt):
        return
    salts[label] = salt
    if not _SAVING:  # written once, when the run ends: no file work while hosts are planned
        _SAVING.append(_salts_file())
        atexit.register(_save, _SAVING[0], salts)


_SAVING: list[Path] = []


def _save(path: Path, salts: dict[str, str]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with os.fdopen(os.open(temporary, flags, 0o600), "w") as handle:
            json.dump(salts, handle, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home only costs the next run its head start
def _derive(scheme: str, salt: str, content: str) -> str:
    return hashlib.scrypt(content.encode(), salt=bytes.fromhex(salt), dklen=32,
                          maxmem=_MAXMEM, **_PARAMETERS[scheme]).hex()


class _Done:
    def __init__(self, value: str):
        self.value = value

    def get(self) -> str:
        return self.value


_POOL: list[Any] = []  # one gevent ThreadPool of the process, made on first use


def _off_the_event_loop(function: Callable[..., str], *args: str) -> Any:
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
