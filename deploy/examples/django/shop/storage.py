"""Static files storage whose URLs follow the current request's mount prefix.

Django joins a relative STATIC_URL ("static/") with the SCRIPT_NAME of the first request a process serves
and caches the result in settings for the life of the process. An app the gateway reaches under two prefixes
(or once with and once without one) would then print static links for whichever request came first. This
storage keeps the relative base URL and prepends the script prefix of each request instead. Hashed names
come from ManifestStaticFilesStorage unchanged.
"""
from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage
from django.urls import get_script_prefix


class PrefixAwareManifestStorage(ManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs):
        raw = getattr(settings, "STATIC_URL_RAW", "static/")
        self._relative = not raw.startswith(("/", "http://", "https://"))
        if self._relative:
            kwargs.setdefault("base_url", raw)
        super().__init__(*args, **kwargs)

    def url(self, name, force=False):
        url = super().url(name, force)
        if self._relative:
            url = get_script_prefix() + url
        return url
