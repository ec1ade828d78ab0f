"""URL configuration: the shop app at the root; static files too when DEBUG is on."""
from django.conf import settings
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

urlpatterns = [
    path("", include("shop.urls")),
]

if settings.DEBUG:
    urlpatterns += staticfiles_urlpatterns()
