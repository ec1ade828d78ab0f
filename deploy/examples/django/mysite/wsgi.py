"""WSGI entry point: `gunicorn mysite.wsgi` or `uwsgi --plugin python3 --module mysite.wsgi`.

When DJANGO_USE_X_FORWARDED_PREFIX is on (the default) and the request carries X-Forwarded-Prefix, that
prefix becomes SCRIPT_NAME, so reverse() and {% url %} produce /prefix/... links when the gateway mounts the
app over plain HTTP with the prefix stripped. Django reads SCRIPT_NAME before any middleware runs, which is
why this is WSGI middleware and not Django middleware. Only safe behind a proxy that drops client copies of
the header.
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

_django = get_wsgi_application()


def application(environ, start_response):
    from django.conf import settings

    prefix = environ.get("HTTP_X_FORWARDED_PREFIX", "")
    if settings.USE_X_FORWARDED_PREFIX and prefix:
        prefix = "/" + prefix.split(",")[0].strip().strip("/")
        environ["SCRIPT_NAME"] = "" if prefix == "/" else prefix
    return _django(environ, start_response)
