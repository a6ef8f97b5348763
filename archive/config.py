"""Settings in one place: the home folder, its `config.toml`, and the environment.

The home holds `config.toml`, the SQLite catalog (unless `EVIDENCE_DATABASE_URL`
names another database), the local storage roots and `keys/`. Secrets never go
in the config file: storage credentials come from the environment.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archive.age import Recipient

CONFIG_NAME = "config.toml"
DEFAULT_HOME = "./evidence-data"


class ConfigError(Exception):
    """The home or its configuration is missing or wrong; the message says how to fix it."""


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    return Path(home or os.environ.get("EVIDENCE_HOME") or DEFAULT_HOME).expanduser().absolute()


def database_url_from_env(home: Path | None = None) -> str:
    url = os.environ.get("EVIDENCE_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{resolve_home(home) / 'catalog.db'}"


@dataclass
class StorageSpec:
    """One configured backend: a name, a kind, and kind-specific options."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **self.options}


@dataclass
class Policy:
    """How many verified copies the archive wants (copies) and needs to acknowledge (minimum)."""

    copies: int = 2
    minimum: int = 1
    backends: list[str] = field(default_factory=list)  # empty: every configured backend


@dataclass
class Settings:
    home: Path
    operator: str | None = None
    database_url: str | None = None
    recipients: list[str] = field(default_factory=list)
    storage: list[StorageSpec] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)
    extra: dict[str, Any] = field(default_factory=dict)  # sections owned by later features

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def custodian_identity_path(self) -> Path:
        return self.keys_dir / "custodian.key"

    def catalog_url(self) -> str:
        return os.environ.get("EVIDENCE_DATABASE_URL") or self.database_url or (f"sqlite:///{self.home / 'catalog.db'}")

    def age_recipients(self) -> list[Recipient]:
        if not self.recipients:
            raise ConfigError(f"{self.config_path}: no recipients configured; ingest would have no one to encrypt to")
        return [Recipient.parse(text) for text in self.recipients]

    def actor(self, as_name: str | None = None) -> str:
        """Who is acting: --as, else the configured operator, else the OS user.

        Checked here, before any byte is written: the name goes into every
        custody event, whose canonical encoding needs valid UTF-8 text.
        """
        if as_name:
            name = as_name
        elif self.operator:
            name = self.operator
        else:
            try:
                name = getpass.getuser()
            except Exception:  # noqa: BLE001 - no user name in a bare container
                name = f"uid:{os.getuid()}"
        name = name.strip()
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(f"operator name {name!r} is not valid text: pass --as NAME") from exc
        if not name or len(name) > 255 or any(ch < " " for ch in name):
            raise ConfigError(f"operator name {name!r} is empty, too long or has control characters: pass --as NAME")
        return name

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.operator:
            data["operator"] = self.operator
        if self.database_url:
            data["database_url"] = self.database_url
        data["recipients"] = list(self.recipients)
        data["policy"] = {
            "copies": self.policy.copies,
            "minimum": self.policy.minimum,
            "backends": list(self.policy.backends),
        }
        data["storage"] = [spec.to_toml() for spec in self.storage]
        data.update(self.extra)
        return data

    def save(self) -> None:
        """Write the config atomically (temporary file, fsync, rename)."""
        import tomli_w

        tmp = self.config_path.with_suffix(".tmp")
        with open(tmp, "wb") as stream:
            tomli_w.dump(self.to_toml(), stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self.config_path)


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    path = resolve_home(home)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"no archive at {path} (run `evidence init` first, or pass --home)")
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    known = {"operator", "database_url", "recipients", "policy", "storage"}
    storage = []
    for entry in data.get("storage", []):
        entry = dict(entry)
        name, kind = entry.pop("name"), entry.pop("kind")
        storage.append(StorageSpec(name, kind, entry))
    policy_data = data.get("policy", {})
    policy = Policy(
        copies=int(policy_data.get("copies", 2)),
        minimum=int(policy_data.get("minimum", 1)),
        backends=list(policy_data.get("backends", [])),
    )
    return Settings(
        home=path,
        operator=data.get("operator") or None,
        database_url=data.get("database_url") or None,
        recipients=list(data.get("recipients", [])),
        storage=storage,
        policy=policy,
        extra={k: v for k, v in data.items() if k not in known},
    )
