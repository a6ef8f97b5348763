"""The archive's secret keys other than the custodian's: the catalog key and the access identity.

Both are held the same way: unwrapped in `keys/` in the embedded default,
passphrase-wrapped at rest once protected (`evidence keys protect`: age
passphrase files `access.key.age`, `catalog.key.age`), and unlocked into
memory by a custodian (`evidence unlock`: this machine's RAM directory, see
`ramdir`; or one process, with a prompt or a passphrase file). Nothing here is
ever stored in the catalog or on a storage site.

- `files`: the names, and writing a secret file atomically (0600).
- `ramdir`: the RAM-only directory `evidence unlock` publishes keys in.
- `wrapping`: passphrases, and wrapping a key file with one.
- `catalog`: the catalog key itself (sealed fields, keyed lookups).
The per-process holder that ties them together is `archive.context.KeyRing`.
"""
