#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    """Run administrative tasks with the production settings unless told otherwise.

    Production is the default so that a command on a server never falls back to a public key and
    DEBUG; the production settings refuse to start without their variables and say which one is
    missing. Developers (and ``make``, ``scripts/run.sh``) set
    ``DJANGO_SETTINGS_MODULE=config.settings.local``.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
