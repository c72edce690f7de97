"""Secrets usable in clear are sealed at rest (Fernet): the key from TESSERA_SECRET_KEY or a
0600 key file next to the database, made once and reused; nothing secret in reprs or errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gateway.auth import sealed
from gateway.errors import ConfigError

SECRET = "lti11-consumer-secret-value"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sealed.ENV_KEY, raising=False)
    monkeypatch.setattr(sealed, "_sealers", {})


def test_a_sealed_secret_opens_again_and_does_not_show_in_the_stored_text(tmp_path: Path) -> None:
    s = sealed.sealer_for(f"sqlite:///{tmp_path / 'tessera.db'}")
    stored = s.seal(SECRET)
    assert SECRET not in stored and stored != s.seal(SECRET)  # Fernet adds a random IV
    assert s.open(stored) == SECRET
    assert "key" in repr(s) and Fernet.generate_key().decode()[:8] not in repr(s)


def test_the_key_file_is_made_next_to_the_database_with_mode_0600_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'tessera.db'}"
    stored = sealed.sealer_for(url).seal(SECRET)
    key_file = tmp_path / sealed.KEY_FILE_NAME
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    monkeypatch.setattr(sealed, "_sealers", {})  # as a new process would
    assert sealed.sealer_for(url).open(stored) == SECRET


def test_the_environment_key_wins_and_a_wrong_key_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'tessera.db'}"
    monkeypatch.setenv(sealed.ENV_KEY, Fernet.generate_key().decode())
    stored = sealed.sealer_for(url).seal(SECRET)
    assert not (tmp_path / sealed.KEY_FILE_NAME).exists()
    monkeypatch.setenv(sealed.ENV_KEY, Fernet.generate_key().decode())
    with pytest.raises(ConfigError) as err:
        sealed.sealer_for(url).open(stored)
    assert SECRET not in str(err.value) and stored not in str(err.value)
    monkeypatch.setenv(sealed.ENV_KEY, "not-a-fernet-key")
    with pytest.raises(ConfigError, match="not a Fernet key"):
        sealed.sealer_for(url)


def test_a_server_database_keeps_its_key_file_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert sealed.key_file_for("postgresql+psycopg://u@db/tessera") == tmp_path / sealed.KEY_FILE_NAME
