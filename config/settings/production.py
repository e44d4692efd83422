"""Settings for production. They fail closed: a missing or unsafe variable stops the process.

``config/wsgi.py``, ``config/celery.py`` and ``manage.py`` use these settings unless
``DJANGO_SETTINGS_MODULE`` says otherwise (``make run`` and ``scripts/run.sh`` set
``config.settings.local`` explicitly). ``manage.py check --deploy`` passes clean with them
(``tests/test_production.py``).

Required (ImproperlyConfigured, naming the variable, when one is missing or unsafe):
    DJANGO_SECRET_KEY       at least 50 characters, not a development key
    DJANGO_ALLOWED_HOSTS    comma-separated host names the site answers to (no ``*``)
    DATABASE_URL            the database (no SQLite fallback)
    REDIS_URL               broker of the worker and beat, cache, sign-in counters
    SITE_URL                the public ``https://`` address (links in e-mails, trusted CSRF origin)
    EMAIL_HOST              SMTP server; TLS on (``EMAIL_USE_TLS``, default 1, or ``EMAIL_USE_SSL=1``);
                            plain SMTP is accepted only to a relay on this machine (localhost)

Optional:
    DJANGO_CSRF_TRUSTED_ORIGINS    more origins (comma-separated) besides SITE_URL's
    DJANGO_SECURE_PROXY_SSL_HEADER header the TLS-terminating proxy sets, default
                                   ``X-Forwarded-Proto: https``; ``off`` when there is no proxy
    DJANGO_SECURE_SSL_REDIRECT     default 1
    DJANGO_SECURE_HSTS_SECONDS     default 31536000 (one year); DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS,
                                   DJANGO_SECURE_HSTS_PRELOAD default 1
    CASEWORK_TRUSTED_PROXIES       see accounts/signin.py (client address for sign-in throttling)
"""

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def _required(name: str, meaning: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set ({meaning}). The production settings (config.settings.production) refuse to "
            f"start without it. On a developer machine use DJANGO_SETTINGS_MODULE=config.settings.local."
        )
    return value


def _refuse(name: str, why: str) -> None:
    raise ImproperlyConfigured(f"{name} {why}. The production settings refuse to start with it.")


# Checked before the shared settings are read, so nothing (no SQLite file, no broker folder) is
# created by a process that is about to refuse.
_secret = _required("DJANGO_SECRET_KEY", "the secret that signs sessions and tokens")
if len(_secret) < 50 or len(set(_secret)) < 5 or _secret.startswith(("django-insecure", "dev-only")):
    _refuse("DJANGO_SECRET_KEY", "is too short or a development key (use 50+ random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))')")
_hosts = [h.strip() for h in _required("DJANGO_ALLOWED_HOSTS", "host names the site answers to").split(",")
          if h.strip()]
if "*" in _hosts:
    _refuse("DJANGO_ALLOWED_HOSTS", "contains '*'")
_required("DATABASE_URL", "e.g. postgres://casework@db.internal:5432/casework")
_required("REDIS_URL", "broker of the Celery worker and beat, shared cache and sign-in counters")
_site = urlsplit(_required("SITE_URL", "the public https:// address of the site"))
if _site.scheme != "https" or not _site.netloc:
    _refuse("SITE_URL", "is not an https:// address")
_email_host = _required("EMAIL_HOST", "the SMTP server for notices and escalation e-mails")

from config.settings.base import *  # noqa: E402,F401,F403
from config.settings.base import MIDDLEWARE, env_bool  # noqa: E402

DEBUG = False
SECRET_KEY = _secret
ALLOWED_HOSTS = _hosts
SITE_URL = f"{_site.scheme}://{_site.netloc}{_site.path}".rstrip("/")
CSRF_TRUSTED_ORIGINS = [f"{_site.scheme}://{_site.netloc}"] + [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# HTTPS everywhere: redirect, HSTS, cookies only over TLS.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
_proxy_header = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https").strip()
if _proxy_header.lower() in {"", "off", "none", "0"}:
    SECURE_PROXY_SSL_HEADER = None
else:
    _name, _, _value = _proxy_header.partition(":")
    if not _name.strip() or not _value.strip():
        _refuse("DJANGO_SECURE_PROXY_SSL_HEADER", "is not of the form 'Header-Name: value'")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())
# The audit chain's HMAC key, kept outside the database (casework.audit; casework.E002 checks it).
CASEWORK_AUDIT_KEY = _required("CASEWORK_AUDIT_KEY", "the key that seals the audit chain (HMAC)")
if len(CASEWORK_AUDIT_KEY) < 32:
    _refuse("CASEWORK_AUDIT_KEY", "is shorter than 32 characters")
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {  # noqa: F405 (base's policy, plus: never load anything over plain HTTP)
    "DIRECTIVES": {**CONTENT_SECURITY_POLICY["DIRECTIVES"], "upgrade-insecure-requests": True},  # noqa: F405
}

# Sessions: read from the shared Redis cache, written through to the database (a restart of Redis
# signs nobody out): one query less on every page a signed-in member of staff opens.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# Static files served by the application server itself (whitenoise), from STATIC_ROOT after
# ``manage.py collectstatic``; names carry a content hash, so they are cached for a year.
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Pages only ever link the hashed names: the unhashed copies are not kept (nor compressed, which
# halves the time collectstatic takes at every start of scripts/serve_production.sh).
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

# SMTP only, encrypted unless the relay runs on this machine.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = _email_host
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "465" if EMAIL_USE_SSL else "587"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "30"))
if EMAIL_USE_SSL and EMAIL_USE_TLS:
    _refuse("EMAIL_USE_TLS", "and EMAIL_USE_SSL are both on (choose one)")
if not (EMAIL_USE_SSL or EMAIL_USE_TLS) and EMAIL_HOST not in {"localhost", "127.0.0.1", "::1"}:
    _refuse("EMAIL_USE_TLS", f"is off for the remote SMTP server {EMAIL_HOST} (mail would travel unencrypted)")
