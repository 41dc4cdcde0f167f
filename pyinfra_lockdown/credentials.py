"""The relay credentials: read from a root-only file or the environment, never from host data,
and never shown (``Credentials`` prints neither field)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import renamed
from .value_checks import SettingsError

LOGIN_ENV, PASSWORD_ENV = "LOCKDOWN_RELAY_LOGIN", "LOCKDOWN_RELAY_PASSWORD"
# The names before providers other than Mailgun existed; still read, never both disagreeing.
LEGACY_ENV = {LOGIN_ENV: "MAILGUN_SMTP_LOGIN", PASSWORD_ENV: "MAILGUN_SMTP_PASSWORD"}
FORBIDDEN_SECRET_KEYS = ("relay_password", "mailgun_password", "smtp_password")


@dataclass(frozen=True)
class Credentials:
    login: str = field(repr=False)
    password: str = field(repr=False)

    def __repr__(self) -> str:
        # Neither is printed, even by accident: Postmark's login is its API token, SES's an
        # access key id.
        return "Credentials(login=***, password=***)"


def read_credentials(data: Any, environ: Mapping[str, str], secret_path: str | None) -> Credentials:
    """Relay credentials from the file ``secret_path`` (host data ``relay_credentials_file``,
    already checked) or the environment, never host data.

    Each of login and password is read under its neutral name (LOCKDOWN_RELAY_*) or its older
    Mailgun name; when both names are set they must agree (values are never shown)."""
    for forbidden in FORBIDDEN_SECRET_KEYS:
        if hasattr(data, "get") and data.get(forbidden) is not None:
            raise SettingsError(forbidden, "secrets must not be kept in inventory data",
                                f"Remove it; export {PASSWORD_ENV} or use relay_credentials_file")
    values: Mapping[str, str]
    if secret_path:
        values = read_secret_file(Path(os.path.expanduser(secret_path)))
        source, key = f"relay_credentials_file {secret_path}", "relay_credentials_file"
    else:
        values, source, key = environ, "the environment", LOGIN_ENV
    renamed.old_env_names(values, source)  # warns once per run: MAILGUN_SMTP_* are renamed
    found = {}
    for name, legacy in LEGACY_ENV.items():
        new, old = values.get(name), values.get(legacy)
        if new and old and new != old:
            raise SettingsError(key, f"{name} and {legacy} are both set in {source} and differ",
                                f"Keep only {name}")
        found[name] = new or old
    login, password = found[LOGIN_ENV], found[PASSWORD_ENV]
    if not login or not password:
        missing = " and ".join(f"{n} (or {LEGACY_ENV[n]})" for n, v in
                               ((LOGIN_ENV, login), (PASSWORD_ENV, password)) if not v)
        raise SettingsError(key, f"no relay credentials: {missing} missing in {source}",
                            f"Export {LOGIN_ENV} and {PASSWORD_ENV}, or set relay_credentials_file "
                            "to a file holding both")
    return checked_credentials(login, password, key)


def checked_credentials(login: str, password: str, key: str) -> Credentials:
    if any(c.isspace() for c in login) or "\n" in password:
        raise SettingsError(key, "the login must not contain spaces and the password must be "
                            "one line")
    return Credentials(login=login, password=password)


def read_secret_file(secret: Path) -> dict:
    key = "relay_credentials_file"
    try:
        mode = secret.stat().st_mode
        text = secret.read_text()
    except OSError as error:
        raise SettingsError(key, f"cannot read {secret}: {error.strerror}") from None
    if mode & 0o077:
        raise SettingsError(key, f"{secret} is readable by other users (mode {mode & 0o777:o})",
                            f"Run: chmod 600 {secret}")
    values = {}
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values
