#!/usr/bin/env python
"""A second, tiny Django project: the bring-your-own-app path is tested against it."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tinysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
