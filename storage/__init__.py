"""Storage backends, replication policy and fixity: where the encrypted bytes live."""
