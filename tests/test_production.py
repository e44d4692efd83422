"""Production fails closed, passes ``check --deploy`` clean and really serves under gunicorn + whitenoise.

Every test runs the production settings in a separate process (settings are read once per
process), with a test secret, the test database and ALLOWED_HOSTS=127.0.0.1.
"""

import os
from pathlib import Path
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.db import connection
import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIN = Path(PY).parent


def database_url(tmp_path: Path) -> str:
    """The test database as a URL (PostgreSQL), or an SQLite file of its own (the test one is in memory)."""
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return f"sqlite:///{tmp_path / 'production.sqlite3'}"


@pytest.fixture
def production_env(tmp_path, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        url = database_url(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "EMAIL_", "CASEWORK_", "SECURE_")) and k not in {
               "DATABASE_URL", "REDIS_URL", "SITE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        CASEWORK_AUDIT_KEY=secrets.token_urlsafe(32),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=url,
        # The login page never touches the broker or the cache; an unused port proves it.
        REDIS_URL=os.environ.get("REDIS_URL") or "redis://127.0.0.1:9/0",
        SITE_URL="https://casework.bureau.invalid",
        EMAIL_HOST="smtp.bureau.invalid",
        CASEWORK_VAR_DIR=str(tmp_path / "var"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run(env, *args, timeout=180):
    return subprocess.run([PY, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_check_deploy_is_clean_under_production_settings(production_env):
    result = run(production_env, "manage.py", "check", "--deploy", "--fail-level", "DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_SECRET_KEY", None),
        ("DJANGO_SECRET_KEY", "short"),
        ("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me" + "x" * 40),
        ("CASEWORK_AUDIT_KEY", None),
        ("CASEWORK_AUDIT_KEY", "short"),
        ("DJANGO_ALLOWED_HOSTS", None),
        ("DJANGO_ALLOWED_HOSTS", "*"),
        ("DATABASE_URL", None),
        ("REDIS_URL", None),
        ("SITE_URL", None),
        ("SITE_URL", "http://casework.bureau.invalid"),
        ("EMAIL_HOST", None),
        ("EMAIL_USE_TLS", "0"),  # plain SMTP to a remote server
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto"),
    ],
)
def test_production_refuses_to_start_without_a_safe_value(production_env, variable, value):
    env = dict(production_env)
    if value is None:
        env.pop(variable)
    else:
        env[variable] = value
    result = run(env, "-c", "import django; django.setup()")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr.splitlines()[-1], result.stderr
    assert not (Path(env["CASEWORK_VAR_DIR"]) / "db.sqlite3").exists()  # refused before creating anything


def test_plain_smtp_is_accepted_to_a_relay_on_this_machine(production_env):
    env = {**production_env, "EMAIL_HOST": "localhost", "EMAIL_USE_TLS": "0"}
    result = run(env, "-c", "import django; django.setup(); from django.conf import settings; "
                            "print(settings.EMAIL_USE_TLS, settings.EMAIL_PORT)")
    assert result.returncode == 0, result.stderr
    env = {k: v for k, v in production_env.items() if k != "EMAIL_USE_TLS"}
    result = run(env, "-c", "import django; django.setup(); from django.conf import settings; "
                            "print(settings.EMAIL_USE_TLS, settings.EMAIL_BACKEND)")
    assert result.stdout.split() == ["True", "django.core.mail.backends.smtp.EmailBackend"]


@pytest.mark.parametrize("entry", [
    ["manage.py", "check"],
    ["-c", "import config.wsgi"],
    ["-c", "from config.celery import app; app.loader.import_default_modules()"],
])
def test_entry_points_default_to_production_and_refuse_without_its_variables(production_env, entry):
    env = {k: v for k, v in production_env.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY"}}
    result = run(env, *entry)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr, result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, **headers):
    request = urllib.request.Request(url, headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_gunicorn_serves_the_admin_login_and_its_static_files(production_env):
    collected = run(production_env, "manage.py", "collectstatic", "--noinput", "--verbosity", "0")
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--timeout", "60"],
        cwd=ROOT, env=production_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    proxied = {"X-Forwarded-Proto": "https"}  # what the TLS-terminating front server adds
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, headers, body = fetch(f"{base}/admin/login/", **proxied)
                break
            except (ConnectionError, urllib.error.URLError):
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "gunicorn did not answer within 90 s"
                time.sleep(0.5)
        page = body.decode()
        assert status == 200, page[:2000]
        assert 'name="username"' in page
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        policy = {d.split()[0]: d.split()[1:] for d in headers["Content-Security-Policy"].split("; ")}
        assert policy["script-src"][0] == "'self'" and "'unsafe-inline'" not in policy["script-src"]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert headers["X-Frame-Options"] == "DENY"
        # Static files: hashed names from the manifest, served by whitenoise with their type.
        css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
        icon = re.search(r'href="(/static/casework/favicon\.[0-9a-f]{12}\.svg)"', page)
        assert css and icon, page[:2000]
        status, headers, body = fetch(base + css.group(1), **proxied)
        assert (status, headers["Content-Type"].split(";")[0]) == (200, "text/css")
        assert "max-age=315360000" in headers["Cache-Control"] and b"--body-fg" in body
        status, headers, _ = fetch(base + icon.group(1), **proxied)
        assert (status, headers["Content-Type"]) == (200, "image/svg+xml")
        # /favicon.ico leads to the icon; plain HTTP is sent to HTTPS; an unknown host is refused.
        status, headers, _ = fetch(f"{base}/favicon.ico", **proxied)
        assert status == 302 and re.match(r"/static/casework/favicon\.[0-9a-f]{12}\.ico$", headers["Location"])
        status, headers, _ = fetch(f"{base}/admin/login/")
        assert (status, headers["Location"]) == (301, f"https://127.0.0.1:{port}/admin/login/")
        assert fetch(f"{base}/admin/login/", Host="evil.example", **proxied)[0] == 400
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0
