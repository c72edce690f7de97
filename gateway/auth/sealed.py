"""Secrets that must be usable in clear, sealed at rest with Fernet.

OAuth 2.0 client secrets are only ever compared, so ``clients`` stores a scrypt hash. An
OAuth 1.0a secret (LTI 1.1 consumer secrets, OneRoster 1.1) is different: HMAC-SHA1 signs
with the secret itself, so the gateway needs it back in clear to check a signature or to
sign an outcome it sends. Such secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256,
from ``cryptography``) before they reach the database, so a copy of the database alone
does not reveal them.

The key comes from ``TESSERA_SECRET_KEY`` (a urlsafe-base64 Fernet key, for deployments
that keep keys in a secret manager) or else from a key file next to the database,
created with mode 0600 on first use. Neither the key nor a clear secret is ever logged:
``Sealer`` and ``Sealed`` hide them from ``repr``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import make_url

from ..errors import ConfigError

ENV_KEY = "TESSERA_SECRET_KEY"
KEY_FILE_NAME = "tessera-secret.key"


class Sealer:
    """Seals and opens secrets with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self.__fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(f"{ENV_KEY} (or the key file) is not a Fernet key: 32 bytes, urlsafe base64") from None

    def __repr__(self) -> str:
        return "Sealer(<key hidden>)"

    def seal(self, secret: str) -> str:
        return self.__fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self.__fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise ConfigError(
                f"a stored secret cannot be opened with this key: was {ENV_KEY} or {KEY_FILE_NAME} changed?"
            ) from None


def key_file_for(database_url: str) -> Path:
    """The key file: next to a SQLite database file, else in the working directory."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / KEY_FILE_NAME
    return Path.cwd() / KEY_FILE_NAME


def read_or_create_key(path: Path) -> bytes:
    """The key in ``path``, or a new Fernet key written there (mode 0600) when there is none."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    key = Fernet.generate_key()
    try:
        # O_EXCL: two processes starting at once never overwrite each other's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


_lock = threading.Lock()
_sealers: dict[str, Sealer] = {}


def sealer_for(database_url: str) -> Sealer:
    """The sealer for a database: the environment's key, or that database's key file."""
    env = os.environ.get(ENV_KEY)
    if env:
        return Sealer(env.encode("ascii"))
    path = key_file_for(database_url)
    with _lock:
        found = _sealers.get(str(path))
        if found is None:
            found = _sealers[str(path)] = Sealer(read_or_create_key(path))
        return found


__all__ = ["ENV_KEY", "KEY_FILE_NAME", "Sealer", "key_file_for", "read_or_create_key", "sealer_for"]
