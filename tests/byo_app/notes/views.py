from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Note


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("up", content_type="text/plain")


@csrf_exempt
def notes(request: HttpRequest) -> HttpResponse:
    """GET: the five newest notes; POST: add one."""
    if request.method == "POST":
        note = Note.objects.create(text=request.POST.get("text", "")[:200])
        return JsonResponse({"id": note.pk}, status=201)
    latest = list(Note.objects.order_by("-pk").values_list("text", flat=True)[:5])
    return JsonResponse({"latest": latest})
