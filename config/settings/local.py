"""Settings for a developer's machine and the one-command demo."""

from config.settings.base import *  # noqa: F401,F403
from config.settings.base import SECRET_KEY, env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
# A public development key: these settings are for one developer's machine only (loopback).
SECRET_KEY = SECRET_KEY or "dev-only-insecure-key-change-me"

# A development key for the audit chain; production requires CASEWORK_AUDIT_KEY.
CASEWORK_AUDIT_KEY = CASEWORK_AUDIT_KEY or "dev-only-audit-key-not-secret"  # noqa: F405
