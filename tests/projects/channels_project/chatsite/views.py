import time

from django.http import HttpResponse


def hello(request):
    return HttpResponse(f"hello from daphne {request.GET.get('n', '')}".strip())


def slow(request):
    time.sleep(float(request.GET.get("sleep", "0.5")))
    return HttpResponse("slow done")
