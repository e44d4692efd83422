"""Settings for the test suite: same database and broker choice as production, fast hashing."""

from config.settings.base import *  # noqa: F401,F403

SECRET_KEY = "test-only-insecure-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEBUG = False

# A cache namespace of its own per test process: counters (e.g. login throttling) never leak
# between runs or xdist workers sharing one Redis.
import uuid  # noqa: E402

CACHES["default"]["KEY_PREFIX"] = f"casework-test-{uuid.uuid4().hex[:12]}"  # noqa: F405
CACHES["axes"]["KEY_PREFIX"] = f"casework-test-axes-{uuid.uuid4().hex[:12]}"  # noqa: F405

# A fixed audit key for tests; production requires CASEWORK_AUDIT_KEY.
CASEWORK_AUDIT_KEY = CASEWORK_AUDIT_KEY or "test-only-audit-key-not-secret"  # noqa: F405
