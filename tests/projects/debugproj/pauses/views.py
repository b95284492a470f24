from django.http import HttpRequest, HttpResponse

VERSION = "v1"


def bp(request: HttpRequest) -> HttpResponse:
    x = 6 * 7
    breakpoint()
    return HttpResponse(f"bp {x} {VERSION}", content_type="text/plain")


def ask(request: HttpRequest) -> HttpResponse:
    line = input("your name? ")
    return HttpResponse(f"hello {line}", content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    secret_local = "kept-" + request.GET.get("n", "0")
    try:
        raise ValueError(secret_local)
    except ValueError as exc:
        from devconsole.child import postmortem

        token = postmortem.keep(exc)
    return HttpResponse(f"pm={token}", status=500, content_type="text/plain")


def version(request: HttpRequest) -> HttpResponse:
    return HttpResponse(VERSION, content_type="text/plain")


def crash(request: HttpRequest) -> HttpResponse:
    failing_local = {"answer": 42}
    raise KeyError(failing_local["answer"])


def custom_hook(*args: object, **kwargs: object) -> None:
    """A breakpoint hook of the project's own (PYTHONBREAKPOINT=pauses.views.custom_hook)."""
    print("custom hook", flush=True)
    global VERSION
    VERSION = input("new version? ")


def shout(request: HttpRequest) -> HttpResponse:
    print("SHOUTED-" + request.GET.get("n", ""), flush=True)
    return HttpResponse("shouted", content_type="text/plain")
