"""Views of the demo: each one shows the console a different kind of request."""

import json
import math
import time

from django.contrib.auth.models import Permission
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt

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


# Pages that show what the console tells about a request (its SQL, its
# exception, its body): each one has a flaw to find on purpose.


def n_plus_one(request):
    """One query for the permissions, then one more per permission: its
    content type is fetched inside the loop (``select_related`` would join it)."""
    rows = []
    for permission in Permission.objects.order_by("id")[:20]:
        rows.append(f"{permission.codename}: {permission.content_type.app_label}")  # one query each
    return HttpResponse("\n".join(rows) + "\n", content_type="text/plain; charset=utf-8")


def duplicate(request):
    """The same count asked twice: the second one is a duplicate query."""
    total = Product.objects.filter(archived=False).count()
    again = Product.objects.filter(archived=False).count()  # the same query again
    named = Product.objects.filter(name__icontains=request.GET.get("q", "")).count()  # ?q= goes into a parameter
    return HttpResponse(
        f"{total} products ({again} counted twice), {named} named like that\n",
        content_type="text/plain; charset=utf-8",
    )


def queries(request):
    """``?n=`` (default 20, at most 200) small queries, each a different product id: the benchmark's page."""
    try:
        count = max(0, min(int(request.GET.get("n", "20")), 200))
    except ValueError:
        count = 20
    found = sum(Product.objects.filter(pk=index).exists() for index in range(1, count + 1))
    return HttpResponse(f"{count} queries, {found} found\n", content_type="text/plain; charset=utf-8")


@csrf_exempt
def api_echo(request):
    """POST a JSON object: the answer echoes it with its keys counted, 201
    (an API call, no CSRF token); anything else, an empty body too, is a 400."""
    if request.method != "POST":
        return JsonResponse({"error": "POST a JSON object here"}, status=405)
    if not request.body:
        return JsonResponse({"error": "an empty body: POST a JSON object here"}, status=400)
    try:
        payload = json.loads(request.body)
    except ValueError as exc:
        return JsonResponse({"error": f"not JSON: {exc}"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "a JSON object, please"}, status=400)
    return JsonResponse({"received": payload, "keys": sorted(payload)}, status=201)


def contact(request):
    """A form posted the usual way (CSRF token, urlencoded body)."""
    sent = None
    if request.method == "POST":
        sent = {"name": request.POST.get("name", ""), "message": request.POST.get("message", "")}
    return render(request, "shop/contact.html", {"sent": sent})


def boom_locals(request):
    """A 500 whose frame has something to look at: a product, a dict, a
    secret-named local (masked in the console) and text that would be
    markup or a terminal escape if anything interpreted it."""
    products = list(Product.objects.order_by("name")[:3])
    # In cents (an int): a Decimal would raise decimal.DivisionByZero instead.
    basket = {"items": [p.slug for p in products], "total_cents": sum(int(p.price * 100) for p in products)}
    password = "hunter2"  # a demo of masking
    hostile = "[red]not markup[/red] \x1b[2J not an escape"
    discount = len(basket["items"]) - 3
    return HttpResponse(f"{basket['total_cents'] / discount} {password} {hostile}")  # ZeroDivisionError
