"""Settings for the Switchyard Django example.

Every setting that differs between deployments comes from an environment variable, so the same tree runs
alone, under gunicorn or uWSGI in the tests, and in docker-compose behind the gateway:

DJANGO_SECRET_KEY            secret key (an insecure development default is used when unset)
DJANGO_DEBUG                 "1"/"true" turns DEBUG on (default off)
DJANGO_ALLOWED_HOSTS         comma-separated hosts (default "*": this is an example)
DJANGO_FORCE_SCRIPT_NAME     mount prefix to use instead of the WSGI SCRIPT_NAME (unset by default)
DJANGO_USE_X_FORWARDED_PREFIX  "1" (default) lets wsgi.py take SCRIPT_NAME from X-Forwarded-Prefix
DJANGO_STATIC_URL            static URL (default "static/", relative, so the script prefix is prepended)
DJANGO_STATIC_ROOT           where collectstatic writes (default <project>/staticfiles)
DJANGO_USE_X_FORWARDED_HOST  "1" (default) trusts X-Forwarded-Host for request.get_host()
DJANGO_USE_X_FORWARDED_PORT  "1" trusts X-Forwarded-Port (default off)
DJANGO_SECURE_PROXY_SSL_HEADER  "HEADER,value" marking a request as HTTPS
                             (default "HTTP_X_FORWARDED_PROTO,https"; empty turns it off)
DJANGO_CSRF_TRUSTED_ORIGINS  comma-separated origins with scheme, e.g. "https://shop.example"
DJANGO_SQLITE_PATH           if set, a sqlite database file (none is needed: the example has no models)
DJANGO_FILE_UPLOAD_TEMP_DIR  where uploads past FILE_UPLOAD_MAX_MEMORY_SIZE are spooled (default: system temp)
DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE  bytes of non-file request data allowed (default 64 MiB)

Trusting X-Forwarded-* is right only behind a proxy that strips client-sent copies (the gateway does); an
app reachable directly would let clients forge its host, scheme and prefix.
"""
import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "django-insecure-switchyard-example-do-not-deploy"
DEBUG = env_bool("DJANGO_DEBUG")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "*")

if os.environ.get("DJANGO_FORCE_SCRIPT_NAME"):
    FORCE_SCRIPT_NAME = os.environ["DJANGO_FORCE_SCRIPT_NAME"]

# Read by mysite.wsgi, not by Django itself.
USE_X_FORWARDED_PREFIX = env_bool("DJANGO_USE_X_FORWARDED_PREFIX", True)

USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", True)
USE_X_FORWARDED_PORT = env_bool("DJANGO_USE_X_FORWARDED_PORT", False)
_ssl_header = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO,https")
if _ssl_header.strip():
    _name, _, _value = _ssl_header.partition(",")
    SECURE_PROXY_SSL_HEADER = (_name.strip(), _value.strip())

CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
if django.VERSION < (4, 0):
    # Django before 4.0 wants bare hosts here; 4.0 and later want origins with a scheme.
    CSRF_TRUSTED_ORIGINS = [o.split("://", 1)[-1] for o in CSRF_TRUSTED_ORIGINS]

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
            ],
        },
    },
]

if os.environ.get("DJANGO_SQLITE_PATH"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ["DJANGO_SQLITE_PATH"],
        }
    }
else:
    DATABASES = {}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = os.environ.get("DJANGO_STATIC_URL", "static/")
# Django caches a relative STATIC_URL joined with the first request's prefix; the storage below reads this
# raw value and adds each request's prefix itself (see shop/storage.py).
STATIC_URL_RAW = STATIC_URL
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or str(BASE_DIR / "staticfiles")
# ManifestStaticFilesStorage (collectstatic writes hashed names and staticfiles.json), made prefix-aware.
_static_backend = "shop.storage.PrefixAwareManifestStorage"
if django.VERSION >= (4, 2):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": _static_backend},
    }
else:
    # Debian 12 ships Django 3.2, which predates STORAGES (and 4.2 refuses both at once).
    STATICFILES_STORAGE = _static_backend

# Uploads: files above 1 MiB are streamed to temporary files rather than held in memory, so a 20 MB upload
# costs one chunk of memory at a time.
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
FILE_UPLOAD_MAX_MEMORY_SIZE = 1 << 20
FILE_UPLOAD_TEMP_DIR = os.environ.get("DJANGO_FILE_UPLOAD_TEMP_DIR") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", str(64 << 20)))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
