"""Settings in two kinds: what a process needs to start, and what the archive runs under.

`config.toml` in the home holds only what a process needs to start: where the
catalog is (`database_url`, else `EVIDENCE_DATABASE_URL`, else SQLite in the
home), the default operator, and tuning sections (`[worker]`, `[fixity]`,
`[log]`). Everything that changes while the archive runs (storage sites, the
replication policy, the age recipients originals are encrypted to) lives in the
catalog (`archive.catalog.settings`), changes in the same transaction as its
custody event, and is read fresh by every use case as a `RuntimeConfig`.
Secrets never go in either: storage credentials come from the secrets file or
the environment (`storage.secrets`).
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.toml"
DEFAULT_HOME = "./evidence-data"
# Keys an older config.toml kept that now live in the catalog (moved on first start).
LEGACY_KEYS = ("recipients", "policy", "storage")


class ConfigError(Exception):
    """The home or its configuration is missing or wrong; the message says what is wrong."""


def resolve_home(home: str | os.PathLike[str] | None) -> Path:
    return Path(home or os.environ.get("EVIDENCE_HOME") or DEFAULT_HOME).expanduser().absolute()


def database_url_from_env(home: Path | None = None) -> str:
    url = os.environ.get("EVIDENCE_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{resolve_home(home) / 'catalog.db'}"


@dataclass
class StorageSpec:
    """One storage site: a name, a kind, and its non-secret, kind-specific options."""

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
    backends: list[str] = field(default_factory=list)  # empty: every storage site

    def as_dict(self) -> dict[str, Any]:
        return {"copies": self.copies, "minimum": self.minimum, "backends": list(self.backends)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        return cls(
            copies=int(data.get("copies", 2)),
            minimum=int(data.get("minimum", 1)),
            backends=[str(name) for name in data.get("backends", [])],
        )


@dataclass
class RuntimeConfig:
    """The configuration one use case runs under, read from the catalog as it begins."""

    archive_id: str
    recipients: list[str] = field(default_factory=list)
    storage: list[StorageSpec] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)

    def site(self, name: str) -> StorageSpec | None:
        return next((spec for spec in self.storage if spec.name == name), None)

    def site_names(self) -> list[str]:
        return [spec.name for spec in self.storage]

    def policy_names(self) -> list[str]:
        """The sites the policy writes to: those it names, else every site."""
        return list(self.policy.backends) or self.site_names()


@dataclass
class Settings:
    """What a process needs to start: the home, the catalog's address, tuning sections."""

    home: Path
    operator: str | None = None
    database_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # [worker], [fixity], [log] …
    # What an older config.toml held that now belongs in the catalog; moved on first start.
    legacy: dict[str, Any] = field(default_factory=dict)

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

    def section(self, name: str) -> dict[str, Any]:
        value = self.extra.get(name, {})
        return value if isinstance(value, dict) else {}

    def actor(self, as_name: str | None = None) -> str:
        """Who is acting: the name given, else the configured operator, else the OS user.

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
        return check_actor(name)

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.operator:
            data["operator"] = self.operator
        if self.database_url:
            data["database_url"] = self.database_url
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


def check_actor(name: str) -> str:
    """An operator name fit for custody events: valid text, 1–255 characters, no control characters."""
    name = name.strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"operator name {name!r} is not valid text") from exc
    if not name or len(name) > 255 or any(ch < " " for ch in name):
        raise ConfigError(f"operator name {name!r} is empty, longer than 255 characters or has control characters")
    return name


def legacy_config(legacy: dict[str, Any]) -> tuple[list[str], list[StorageSpec], Policy]:
    """The recipients, storage sites and policy an older config.toml held."""
    storage = []
    for entry in legacy.get("storage", []):
        entry = dict(entry)
        name, kind = entry.pop("name"), entry.pop("kind")
        storage.append(StorageSpec(name, kind, entry))
    return list(legacy.get("recipients", [])), storage, Policy.from_dict(legacy.get("policy", {}))


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    path = resolve_home(home)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"no archive at {path} (create one with `evidence init`, or choose another home)")
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: {exc}") from exc
    known = {"operator", "database_url", *LEGACY_KEYS}
    return Settings(
        home=path,
        operator=data.get("operator") or None,
        database_url=data.get("database_url") or None,
        extra={k: v for k, v in data.items() if k not in known},
        legacy={k: data[k] for k in LEGACY_KEYS if k in data},
    )
