"""Settings shared by every environment, read from the environment.

Environment variables:
    DJANGO_SECRET_KEY   secret key (local and test settings fall back to a development key)
    DJANGO_DEBUG        "1" to enable debug
    DATABASE_URL        e.g. postgres://postgres@127.0.0.1:5432/casework; SQLite file when unset
    REDIS_URL           e.g. redis://127.0.0.1:6379/0; an embedded filesystem broker when unset
    EMAIL_HOST          SMTP host; mail is written to var/mail/ when unset
    SITE_URL            absolute base URL used in email links (default http://127.0.0.1:8000)
    CASEWORK_AUDIT_KEY  secret HMAC key of the audit chain (required in production)
    CASEWORK_AUDIT_ANCHOR_DIR  where verification runs anchor the chain heads (default var/audit)
"""

from datetime import timedelta
import os
from pathlib import Path

from csp.constants import NONCE, NONE, SELF
import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("CASEWORK_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable ("1", "true", "yes" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# No default here: local and test settings carry a development key, production requires one.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    # django.contrib.admin, with the module list built only when a page shows it (config/admin_site.py).
    "config.apps.CaseworkAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "axes",
    "pgtrigger",
    "django_celery_beat",
    "accounts",
    "casework",
    "assessment",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: turns a django-axes lockout into the 429 answer of accounts.signin.lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"


def database_config() -> dict:
    """Return the default database: DATABASE_URL when set, else a WAL-mode SQLite file.

    SQLite runs in WAL mode with IMMEDIATE transactions and a 20 s busy timeout so that the web
    server, the Celery worker and beat can write at the same time without "database is locked".
    """
    sqlite_options = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    url = os.environ.get("DATABASE_URL")
    if url:
        # Persistent connections (one per web thread or worker process, kept 60 s, checked before
        # reuse): no connection set-up per request. psycopg 3's pool (OPTIONS "pool", Django 5.1+)
        # would share fewer connections among a process's threads; at 3 workers × 4 threads the 12
        # persistent ones are well within PostgreSQL's limit, so the simpler setting is kept.
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
        if config["ENGINE"] == "django.db.backends.sqlite3":  # a sqlite:/// URL: same safe settings
            config["OPTIONS"] = {**sqlite_options, **config.get("OPTIONS", {})}
        elif "postgresql" in config["ENGINE"]:
            # No JIT compilation: the pages' queries are short; a plan whose estimated cost passes
            # jit_above_cost spent 300–450 ms compiling (PostgreSQL 15) to save a few milliseconds.
            options = config.setdefault("OPTIONS", {})
            options.setdefault("options", "-c jit=off")
        return config
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3", "OPTIONS": sqlite_options}


DATABASES = {"default": database_config()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out (account, address) pair before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, reading a user's permissions in one statement (issue 11 §3).
    "accounts.backends.OneQueryModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_RAISE_403 = True
GUARDIAN_MONKEY_PATCH_USER = False
ANONYMOUS_USER_NAME = None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
DATA_UPLOAD_MAX_NUMBER_FIELDS = 5000
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# Email: SMTP when EMAIL_HOST is set, otherwise one .log file per message under var/mail/.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "casework@bureau.invalid")

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport (no server needed).
REDIS_URL = os.environ.get("REDIS_URL", "")
# The queue this site's tasks go to and its workers read (default "celery"): sites, or test runs,
# sharing one Redis database keep their tasks apart by naming their own.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CASEWORK_CELERY_QUEUE", "celery")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
# Cache: Redis when REDIS_URL is set, shared by all processes (the "axes" alias holds the sign-in
# failure counters, under its own key prefix).
if REDIS_URL:
    CACHES = {
        alias: {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
        for alias, prefix in (("default", "casework-cache"), ("axes", "casework-axes"))
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "axes": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "axes"},
    }

# Sign-in throttling (django-axes, glue in accounts/signin.py): failures are counted per account AND
# client address; after AXES_FAILURE_LIMIT of them that pair waits AXES_COOLOFF_TIME, and each
# failure during the wait starts it again. The admin login and the push API share the counters,
# kept in Redis when REDIS_URL is set, otherwise in the database (all processes see them).
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler" if REDIS_URL else "axes.handlers.database.AxesDatabaseHandler"
AXES_CACHE = "axes"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = int(os.environ.get("CASEWORK_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("CASEWORK_LOGIN_COOLOFF_MINUTES", "15")))
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "accounts.signin.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.signin.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password"]
# Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or networks); none by default.
CASEWORK_TRUSTED_PROXIES = [p.strip() for p in os.environ.get("CASEWORK_TRUSTED_PROXIES", "").split(",") if p.strip()]

# Content security policy (django-csp): only this site's own scripts, each inline script carrying the
# per-request nonce (``<script nonce="{{ CSP_NONCE }}">``); no plugins, no framing, forms post here
# only. Inline styles stay allowed: the admin's own templates and widgets use style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = False
DJANGO_CELERY_BEAT_TZ_AWARE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "casework": {"handlers": ["console"], "level": os.environ.get("CASEWORK_LOG_LEVEL", "INFO")},
    },
}

# Casework rules (first version; the full deadline policy lives in the database).
CASEWORK_REFERENCE_PREFIX = os.environ.get("CASEWORK_REFERENCE_PREFIX", "JB")
# Lists and queue tiles count rows up to this many, then say "1000+" (issue 11 §3: no count scans
# a million cases).
CASEWORK_LIST_COUNT_CAP = int(os.environ.get("CASEWORK_LIST_COUNT_CAP", "1000"))

# Tier 3 (分管局领导审签): "any" lets every leader sign off while the queue and the e-mail go to the lead
# unit's leaders in charge (Unit.leaders); "in_charge" lets only them (or the key case's leader) act.
CASEWORK_LEADER_REVIEW = os.environ.get("CASEWORK_LEADER_REVIEW", "any")

# Audit chain (tamper evidence, casework.audit): the HMAC key is a secret kept outside the database
# (no default here: local and test settings set a development key, production requires it), and each
# verification run writes a signed snapshot of every case's chain head outside the database.
CASEWORK_AUDIT_KEY = os.environ.get("CASEWORK_AUDIT_KEY", "")
CASEWORK_AUDIT_ANCHOR_DIR = Path(os.environ.get("CASEWORK_AUDIT_ANCHOR_DIR", VAR_DIR / "audit"))

# Message imports (casework.importing): every file is bounded before anything lands. A file over
# one of these limits is refused whole with a message naming the limit; a row over the field or
# width limit is reported on its own while the other rows land.
CASEWORK_IMPORT_MAX_BYTES = int(os.environ.get("CASEWORK_IMPORT_MAX_BYTES", 256 * 1024 * 1024))  # decompressed
CASEWORK_IMPORT_MAX_ROWS = int(os.environ.get("CASEWORK_IMPORT_MAX_ROWS", 1_000_000))  # blank rows count
CASEWORK_IMPORT_MAX_CELLS = int(os.environ.get("CASEWORK_IMPORT_MAX_CELLS", 20_000_000))
CASEWORK_IMPORT_MAX_COLUMNS = int(os.environ.get("CASEWORK_IMPORT_MAX_COLUMNS", 64))  # row width
CASEWORK_IMPORT_MAX_SHARED_STRINGS = int(os.environ.get("CASEWORK_IMPORT_MAX_SHARED_STRINGS", 1_000_000))
CASEWORK_IMPORT_MAX_FIELD_CHARS = int(os.environ.get("CASEWORK_IMPORT_MAX_FIELD_CHARS", 1_000_000))
CASEWORK_IMPORT_BATCH_SIZE = int(os.environ.get("CASEWORK_IMPORT_BATCH_SIZE", 2000))
# Uploads in the admin are stored here and imported by the Celery worker (ImportJob).
CASEWORK_IMPORT_DIR = VAR_DIR / "imports"
# Due clocks the escalation sweep claims and writes per transaction (casework.escalation).
CASEWORK_SWEEP_BATCH_SIZE = int(os.environ.get("CASEWORK_SWEEP_BATCH_SIZE", 500))
# Cases an escalation digest e-mail lists line by line (the longest overdue first; at least 3);
# it links to the case list of all of them.
CASEWORK_DIGEST_LINES = int(os.environ.get("CASEWORK_DIGEST_LINES", 100))
# The push API (casework.api): request body size, messages per request, JSON nesting depth.
CASEWORK_API_MAX_BODY_BYTES = int(os.environ.get("CASEWORK_API_MAX_BODY_BYTES", 8 * 1024 * 1024))
CASEWORK_API_MAX_MESSAGES = int(os.environ.get("CASEWORK_API_MAX_MESSAGES", 1000))
CASEWORK_API_MAX_DEPTH = 8
# An upload up to this size is imported in the request; a larger one by the worker (ImportJob).
CASEWORK_IMPORT_INLINE_BYTES = int(os.environ.get("CASEWORK_IMPORT_INLINE_BYTES", 1024 * 1024))

# Intake duplicate check (casework.duplicates) on the batch import and push path: each registered
# message is indexed and compared with open and recent cases. Off only to load an archive in bulk.
CASEWORK_INTAKE_DUPLICATES = os.environ.get("CASEWORK_INTAKE_DUPLICATES", "1") != "0"
