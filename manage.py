#!/usr/bin/env python
"""Django's management commands in a checkout; installed, the `keyvault` command runs the same."""

from config.cli import main

if __name__ == "__main__":
    main(checkout=True)
