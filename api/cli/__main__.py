"""`python -m api.cli` runs the `evidence` command."""

from api.cli.main import main

main()
