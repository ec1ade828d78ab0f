"""Views that show how the app sees its own URLs when it runs behind the gateway.

index   JSON: reverse(), build_absolute_uri(), SCRIPT_NAME/PATH_INFO, host, scheme, static URL
page    HTML page with {% url %} and {% static %} links
form    GET: a form with {% csrf_token %}; POST (CSRF checked): JSON of what was posted
upload  POST multipart field "file": JSON with its sha256 and size (CSRF-exempt so tests can post bare)
stream  StreamingHttpResponse: ?n= chunks (default 5) with ?delay= seconds between (default 0.1)
slow    sleeps ?seconds= (default 2, at most 30) before answering, for timeout tests
"""
import hashlib
import time

from django.http import HttpResponseNotAllowed, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie


def _number(request, name, default, low, high, kind=int):
    try:
        value = kind(request.GET.get(name, default))
    except ValueError:
        value = default
    return min(max(value, low), high)


def index(request):
    try:
        css = static("shop/site.css")
    except ValueError as err:  # manifest missing: collectstatic has not run and DEBUG is off
        css = "error: %s" % err
    return JsonResponse(
        {
            "app": "django",
            "reverse_index": reverse("shop:index"),
            "reverse_form": reverse("shop:form"),
            "absolute_uri": request.build_absolute_uri(),
            "absolute_form": request.build_absolute_uri(reverse("shop:form")),
            "script_name": request.META.get("SCRIPT_NAME", ""),
            "path_info": request.META.get("PATH_INFO", ""),
            "path": request.path,
            "host": request.get_host(),
            "scheme": request.scheme,
            "is_secure": request.is_secure(),
            "remote_addr": request.META.get("REMOTE_ADDR", ""),
            "static_css": css,
        }
    )


def page(request):
    return render(request, "shop/page.html", {"title": "Switchyard shop"})


@ensure_csrf_cookie
def form(request):
    if request.method == "GET":
        return render(request, "shop/form.html")
    if request.method == "POST":
        posted = {k: request.POST.getlist(k) for k in request.POST if k != "csrfmiddlewaretoken"}
        posted = {k: v[0] if len(v) == 1 else v for k, v in posted.items()}
        return JsonResponse({"app": "django", "posted": posted})
    return HttpResponseNotAllowed(["GET", "POST"])


@csrf_exempt
def upload(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    f = request.FILES.get("file")
    if f is None:
        return JsonResponse({"error": 'no multipart field "file"'}, status=400)
    digest = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse(
        {
            "app": "django",
            "name": f.name,
            "size": size,
            "sha256": digest.hexdigest(),
            "spooled_to_disk": hasattr(f, "temporary_file_path"),
        }
    )


def stream(request):
    n = _number(request, "n", 5, 1, 1000)
    delay = _number(request, "delay", 0.1, 0.0, 5.0, float)

    def chunks():
        for i in range(1, n + 1):
            if i > 1:
                time.sleep(delay)
            yield ("chunk %d of %d\n" % (i, n)).encode()

    response = StreamingHttpResponse(chunks(), content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def slow(request):
    seconds = _number(request, "seconds", 2.0, 0.0, 30.0, float)
    time.sleep(seconds)
    return JsonResponse({"app": "django", "slept": seconds})
