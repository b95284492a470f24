"""Views of the demo: each one shows the console a different kind of request."""

import math
import time

from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render

from .models import Product

#: /slow/ never sleeps longer than this many seconds.
MAX_SLEEP = 10.0


def index(request):
    products = Product.objects.filter(archived=False)
    return render(request, "shop/index.html", {"products": products, "max_sleep": MAX_SLEEP})


def product_detail(request, slug):
    product = get_object_or_404(Product, slug=slug)
    return render(request, "shop/product_detail.html", {"product": product})


def slow(request):
    """Sleep ``?sleep=`` seconds (default 0.5, capped at MAX_SLEEP) before answering."""
    raw = request.GET.get("sleep", "0.5")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        return HttpResponseBadRequest(
            "sleep must be a number of seconds between 0 and %g\n" % MAX_SLEEP,
            content_type="text/plain; charset=utf-8",
        )
    seconds = min(seconds, MAX_SLEEP)
    time.sleep(seconds)
    return HttpResponse(f"slept {seconds:g} s\n", content_type="text/plain; charset=utf-8")


def boom(request):
    raise RuntimeError("boom: this demo view fails on purpose")


def ping(request):
    """The smallest useful response, with Content-Length so keep-alive works (benchmarks)."""
    response = HttpResponse(b"pong", content_type="text/plain")
    response["Content-Length"] = "4"
    return response


def api_products(request):
    products = [
        {
            "name": p.name,
            "slug": p.slug,
            "price": str(p.price),
            "tags": p.tag_list,
            "archived": p.archived,
        }
        for p in Product.objects.all()
    ]
    return JsonResponse({"count": len(products), "products": products})
