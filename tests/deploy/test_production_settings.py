"""Production settings: `DEBUG=false` with a secret key, host names and SMTP is a clean `check --deploy`,
HTTPS only by default; EMAIL_URL's forms; the Content-Security-Policy's origins.

The settings are read once, at start-up, so each production case runs `manage.py` in a subprocess with
the environment an operator would set.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from pictor_billing.settings import content_security_policy, email_mailer

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "billing.pictor.example",
    "EMAIL_URL": "smtp://billing%40pictor.example:app-password@smtp.pictor.example:587?tls",
}
# Set by developers or CI, and no business of a production start-up.
LOCAL_ONLY = ("DEBUG", "EMAIL_BACKEND", "SECURE_SSL_REDIRECT", "SECURE_COOKIES", "SECURE_HSTS_SECONDS",
              "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "BEHIND_PROXY", "STRIPE_API_BASE",
              "STRIPE_JS_URL", "DJANGO_SETTINGS_MODULE")


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if name not in LOCAL_ONLY}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**environment, "DJANGO_SETTINGS_MODULE": "pictor_billing.settings", **PRODUCTION, **env})


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run("manage.py", *args, **env)


def production_settings(*names: str, **env: str) -> dict:
    """The settings a process started with this environment has (unset ones are None)."""
    code = ("import json; from django.conf import settings; "
            f"print(json.dumps({{name: getattr(settings, name, None) for name in {names!r}}}))")
    result = run("-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_production_environment_passes_check_deploy_with_nothing_to_report():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_refuses_console_email_in_production():
    result = manage("check", "--deploy", EMAIL_URL="")
    assert result.returncode != 0
    assert "mail.E001" in result.stdout + result.stderr


def test_with_debug_off_everything_is_https_only_by_default():
    assert production_settings("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
                               "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE") == {
        "SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31536000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True}


def test_each_https_setting_can_be_changed_from_the_environment():
    assert production_settings("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_PRELOAD",
                               SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="3600",
                               SECURE_HSTS_PRELOAD="false") == {
        "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_PRELOAD": False}


def test_behind_a_proxy_its_forwarded_proto_header_says_https_and_never_without_one():
    assert production_settings("SECURE_PROXY_SSL_HEADER", BEHIND_PROXY="true") == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}
    assert production_settings("SECURE_PROXY_SSL_HEADER") == {"SECURE_PROXY_SSL_HEADER": None}


def test_with_debug_on_a_developer_gets_plain_http():
    assert production_settings("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE",
                               DEBUG="true") == {
        "SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0, "SESSION_COOKIE_SECURE": False}


# EMAIL_URL ---------------------------------------------------------------------------------------------

def test_an_smtp_url_with_tls_gives_the_smtp_mailer_with_starttls():
    assert email_mailer("smtp://billing%40pictor.example:p%3Ass@smtp.pictor.example:587?tls") == {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": {
            "host": "smtp.pictor.example", "port": 587, "username": "billing@pictor.example", "password": "p:ss",
            "use_ssl": False, "use_tls": True, "timeout": 10}}


def test_an_smtps_url_uses_tls_from_the_start_and_its_default_port():
    options = email_mailer("smtps://user:secret@mail.example")["OPTIONS"]
    assert (options["use_ssl"], options["use_tls"], options["port"]) == (True, False, None)


def test_a_plain_smtp_url_without_credentials_sends_unauthenticated():
    options = email_mailer("smtp://relay.internal:25")["OPTIONS"]
    assert (options["host"], options["port"], options["username"], options["use_tls"]) == ("relay.internal", 25, "",
                                                                                           False)
    assert email_mailer("smtp://relay.internal?tls=false")["OPTIONS"]["use_tls"] is False


@pytest.mark.parametrize("url", ["console://", "https://smtp.example", "smtp://", "relay.internal:25"])
def test_an_email_url_that_is_not_smtp_is_refused_at_start_up(url):
    with pytest.raises(ImproperlyConfigured):
        email_mailer(url)


def test_the_production_mailer_is_the_one_email_url_names():
    mailers = production_settings("MAILERS")["MAILERS"]
    assert mailers["default"]["OPTIONS"]["host"] == "smtp.pictor.example"
    assert mailers["default"]["OPTIONS"]["use_tls"] is True


# Content-Security-Policy -------------------------------------------------------------------------------

def test_the_policy_allows_our_files_and_stripe_only():
    policy = content_security_policy(stripe_js_url="https://js.stripe.com/v3/", stripe_api_base="")
    assert policy["script-src"] == ["'self'", "https://js.stripe.com"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "https://api.stripe.com", "https://js.stripe.com"]
    assert policy["frame-src"] == ["https://js.stripe.com", "https://hooks.stripe.com"]
    assert not any("unsafe" in value for values in policy.values() for value in values)


def test_an_emulators_origins_join_the_policy_when_set():
    policy = content_security_policy(stripe_js_url="http://127.0.0.1:8420/js.stripe.com/v3/",
                                     stripe_api_base="http://127.0.0.1:8420")
    assert "http://127.0.0.1:8420" in policy["script-src"]
    assert "http://127.0.0.1:8420" in policy["connect-src"]
    assert "https://js.stripe.com" in policy["script-src"]
