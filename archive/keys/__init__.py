"""The archive's secret keys other than the custodian's: the catalog key and the access identity.

Both are held the same way: unwrapped in `keys/` in the embedded default,
passphrase-wrapped at rest once protected, and unlocked into memory by a
custodian. Nothing here is ever stored in the catalog or on a storage site.
"""
