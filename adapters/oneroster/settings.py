"""The OneRoster adapter's settings: environment ``TESSERA_ONEROSTER__*``
(``gateway.config.AdapterSettings``).

The CSV package limits (``csv.limits``) are checked before a package's files are read, and
again while they are read; each refusal names the file, the limit and the variable that
raises it. Why these defaults:

* ``max_uncompressed_bytes`` 20 GiB: a large district's enrollments.csv is 2-3 GB and its
  gradebook results.csv can be as large again; 20 GiB leaves room for the largest districts
  while still refusing a bomb of petabytes. Memory does not grow with it (every file is
  streamed), only the time a hostile package can make an import spend.
* ``max_compression_ratio`` 100: Apache POI's ``ZipSecureFile`` refuses entries above 100:1
  by default (``MIN_INFLATE_RATIO`` 0.01, with a grace size below which it does not look).
  OneRoster CSV compresses 5:1 to 15:1 (the bundled sample 6.6-12.5:1), so 100:1 is far
  from real data and far below a bomb's 1,000:1 (1 GiB of zeros deflates to ~1 MB).
* ``max_members`` 1,000: a package has at most ~25 files (OneRoster 1.2), twice that with
  the ``__MACOSX/`` twins macOS adds; the count is read from the zip's end record before
  its directory is loaded, so a zip of a million entries costs nothing.
* ``max_line_length`` 1 MiB of characters: a real row is under 2 KB; a file with no line
  break at all is refused after 1 MiB instead of being read into memory whole.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gateway.config import AdapterSettings, load_adapter_settings

GiB = 1 << 30
MiB = 1 << 20

#: what an import does with user passwords (``credentials``): drop them (the default) or keep
#: them sealed with the gateway's secret key
KeepCredentials = Literal["drop", "sealed"]


class OneRosterSettings(AdapterSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_ONEROSTER__", env_nested_delimiter="__", extra="forbid")

    max_uncompressed_bytes: int = Field(
        default=20 * GiB, ge=1,
        description="CSV packages: the most bytes all files of a package may hold uncompressed (zip or directory)",
    )
    max_compression_ratio: float = Field(
        default=100.0, gt=1,
        description="CSV packages: the highest uncompressed:compressed ratio of a zip member over 1 MiB (a zip bomb's is 1000:1)",
    )
    max_members: int = Field(
        default=1000, ge=1, description="CSV packages: the most entries a zip (or files a directory) may hold",
    )
    max_line_length: int = Field(
        default=MiB, ge=64,
        description="CSV packages: the most characters of one CSV record (a line, or several when a quoted field holds line breaks)",
    )
    keep_credentials: KeepCredentials = Field(
        default="drop",
        description="user passwords in OneRoster imports (users.csv password, 1.2 userProfiles credentials): "
                    "'drop' never stores them; 'sealed' keeps them encrypted with TESSERA_SECRET_KEY, served only "
                    "under the roster-credentials.readonly scope",
    )


def current_settings() -> OneRosterSettings:
    """The environment's settings (commands and imports outside the app)."""
    return load_adapter_settings(OneRosterSettings)  # type: ignore[return-value]


__all__ = ["KeepCredentials", "OneRosterSettings", "current_settings"]
