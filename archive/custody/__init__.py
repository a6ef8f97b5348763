"""The custody log: every action on evidence, append-only and verifiable."""
