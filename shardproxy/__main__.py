"""``python -m shardproxy`` runs the command line."""

from shardproxy.cli import main

main()
