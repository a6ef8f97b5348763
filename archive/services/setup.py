"""Creating an archive home: config, catalog, two local storage roots, keys.

Keys made here: the custodian identity (unless only its public key is given),
the access identity (every original is encrypted to it too, so the server can
serve reads without the custodian's key) and the catalog key, both unwrapped
in the embedded default (see `archive.services.keys` for protecting them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archive.age import Identity, Recipient
from archive.config import CONFIG_NAME, ConfigError, Policy, Settings, StorageSpec
from archive.custody.checkpoint import write_new

UNWRAPPED_NOTE = (
    "note: the access identity ({access}) and the catalog key ({catalog}) are kept unwrapped, so this "
    "embedded archive works at once; `evidence keys protect` wraps them with a passphrase, after which "
    "a custodian unlocks them with `evidence unlock`."
)
OFFLINE_WARNING = (
    "WARNING: the custodian identity {path} can open every original. In production it belongs "
    "offline (an encrypted USB key in a safe), not on the server: move it away and pass "
    "--identity when you need to read originals."
)


def init_home(
    home: Path,
    *,
    operator: str | None = None,
    extra_recipients: list[str] | None = None,
    custodian_recipient: str | None = None,
) -> dict[str, Any]:
    """Create a new archive at `home`; refuses to touch an existing one.

    With `custodian_recipient`, the custodian's key pair was made elsewhere and
    only its public half comes here, so the server never holds the private key.
    """
    if (home / CONFIG_NAME).exists():
        raise ConfigError(f"an archive already exists at {home}")
    recipients = [str(Recipient.parse(r)) for r in (extra_recipients or [])]
    fresh = not home.exists()
    home.mkdir(parents=True, exist_ok=True)
    if fresh:  # the catalog, keys and local sites inside are this user's alone (an existing folder keeps its mode)
        home.chmod(0o700)
    keys = home / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    identity_path = None
    if custodian_recipient:
        custodian = str(Recipient.parse(custodian_recipient))
    else:
        identity = Identity.generate()
        identity_path = keys / "custodian.key"
        custodian = str(identity.recipient)
        write_new(identity_path, f"# custodian identity (age); public key: {custodian}\n{identity}\n")
    (keys / "custodian.pub").write_text(custodian + "\n", encoding="utf-8")
    from archive.services.keys import create_preview_key, create_secret_keys

    created = create_secret_keys(keys)
    create_preview_key(keys)  # the web pages' thumbnails are encrypted to it, apart from originals
    access = created.access_recipient
    storage = [StorageSpec(name, "local", {"path": f"storage/{name}"}) for name in ("site-a", "site-b")]
    for spec in storage:
        (home / spec.options["path"]).mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, operator=operator)
    settings.save()
    from archive.custody.checkpoint import ensure_log_key

    signer = ensure_log_key(settings)  # publishes keys/log.vkey from day one; the origin names the archive
    from archive.catalog.settings import ARCHIVE_ID, POLICY, RECIPIENTS, add_site, put_setting
    from archive.context import Runtime
    from archive.custody.log import CREATION, append_event, utc_now
    from archive.db import transaction

    archive_id = signer.name.rsplit("/", 1)[-1]
    all_recipients = [custodian, access, *[r for r in recipients if r not in (custodian, access)]]
    runtime = Runtime(settings)
    actor = settings.actor()
    with transaction(runtime.engine) as session:  # creates and migrates the catalog
        from archive.catalog.users import resolve_for

        append_event(
            session,
            CREATION,
            actor=resolve_for(session, runtime, actor, all_recipients, utc_now()),  # a user id, never the name
            details={"created": "archive", "recipients": all_recipients, "storage": [s.name for s in storage]},
        )
        put_setting(session, ARCHIVE_ID, archive_id)
        put_setting(session, RECIPIENTS, all_recipients)
        put_setting(session, POLICY, Policy(copies=2, minimum=1, backends=[]).as_dict())
        for spec in storage:
            add_site(session, spec)
    from archive.services.storage_admin import mark_site

    archive = runtime.archive(actor)
    for backend in archive.backends.values():
        mark_site(archive, backend)
    runtime.close()
    return {
        "home": str(home),
        "config": str(home / CONFIG_NAME),
        "custodian_identity": str(identity_path) if identity_path else None,
        "recipients": all_recipients,
        "access_recipient": access,
        "access_identity": str(keys / created.access_key),
        "catalog_key": str(keys / created.catalog_key),
        "preview_identity": str(keys / "preview.key"),
        "storage": [spec.name for spec in storage],
        "log_verifier_key": signer.verifier.encode(),
    }
