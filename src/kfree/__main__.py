"""``python -m kfree`` runs the command-line tool (for environments where it is not installed)."""

from kfree.cli.app import main

if __name__ == "__main__":
    main()
