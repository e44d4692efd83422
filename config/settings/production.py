"""Settings for production: every secret comes from the environment."""

import os

from config.settings.base import *  # noqa: F401,F403

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]
# The audit chain's HMAC key: a deployment without it fails to start (casework.E002 checks its length).
CASEWORK_AUDIT_KEY = os.environ["CASEWORK_AUDIT_KEY"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
