"""The bundle key: what signs an evidence bundle's `signature.note` (issue 12), never the log key.

Named `<origin>/bundles`, so a bundle signature never opens as a checkpoint
or a receipt, whichever key is tried. Kept like the receipt key
(`archive.custody.side_keys`): `keys/bundle-signing.key` (0600) and
`keys/bundle.vkey`, sealed on each site as `log/bundle-key.age` beside
`log/bundle.vkey`. Its vkey is written into every bundle (`bundle.vkey`) and
into the export-started event, so the log vouches for the key that signed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archive.custody.side_keys import SideKey
from archive.custody.verify import VerificationError

if TYPE_CHECKING:
    from archive.age import Identity
    from archive.context import Archive
    from archive.custody.checkpoint import Signer
    from storage.base import Backend

KEY_SUFFIX = "/bundles"
SIGNING_KEY_NAME = "bundle-signing.key"
VKEY_NAME = "bundle.vkey"
SEALED_KEY = "log/bundle-key.age"  # on each site, beside log/signing-key.age
SITE_VKEY = "log/bundle.vkey"


class BundleKeyError(VerificationError):
    """A site's sealed bundle key that cannot be opened."""


KEY = SideKey("bundles", KEY_SUFFIX, SIGNING_KEY_NAME, VKEY_NAME, SEALED_KEY, SITE_VKEY, error=BundleKeyError)


def bundle_key_name(origin: str) -> str:
    """The bundle key's name for a log origin."""
    return KEY.key_name(origin)


def bundle_signer(archive: Archive) -> Signer:
    """The bundle signer, created on first use, read once per process, sealed onto each site."""
    return KEY.signer(archive)


def bundle_vkey(archive: Archive) -> str:
    """The bundle verifier key, C2SP vkey format (one line, no newline): what `bundle.vkey` holds."""
    return bundle_signer(archive).verifier.encode()


def install_bundle_key(keys_dir: Path, signer: Signer) -> None:
    """Put a recovered bundle signer into a new home's keys/ (a rebuild), unless one is there."""
    KEY.install(keys_dir, signer)


def unseal_bundle_key(backend: Backend, identities: list[Identity]) -> Signer | None:
    """The bundle signer a site keeps sealed, or None when the site has none."""
    return KEY.unseal(backend, identities)
