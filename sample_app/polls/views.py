"""Synchronous views of the tutorial polls app.

Each view is kept to "fetch, then render" with all database access done in the view itself
(querysets are evaluated here, never lazily inside a template), so that an async twin module
can mirror every function one for one using the async ORM. Everything that does no I/O lives
in module-level constants and helpers that both modules can share.

Every polls view starts with the upstream wait (polls/upstream.py; nothing unless
GB_UPSTREAM_MS > 0), before its first query, so the wait never holds a database connection.
"""

from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import upstream
from .models import Choice, Question

INDEX_TEMPLATE = "polls/index.html"
DETAIL_TEMPLATE = "polls/detail.html"
RESULTS_TEMPLATE = "polls/results.html"
LATEST_QUESTIONS_COUNT = 5
# Newest first; pk breaks ties because the seed command gives every question the same pub_date.
LATEST_QUESTIONS_ORDERING = ("-pub_date", "-pk")
CHOICES_ORDERING = ("pk",)
NO_CHOICE_ERROR = "You didn't select a choice."
HEALTH_QUERY = "SELECT 1"
DB_WAIT_QUERY = "SELECT pg_sleep(%s)"
UPLOAD_CHUNK_BYTES = 64 * 1024


def parse_choice_id(post: QueryDict) -> int | None:
    """Return the submitted choice id, or None when it is missing or not an integer."""
    try:
        return int(post["choice"])
    except (KeyError, ValueError):
        return None


def index_context(latest_questions: list[Question]) -> dict[str, object]:
    return {"latest_question_list": latest_questions}


def question_context(
    question: Question, choices: list[Choice], error_message: str | None = None
) -> dict[str, object]:
    context: dict[str, object] = {"question": question, "choices": choices}
    if error_message is not None:
        context["error_message"] = error_message
    return context


def results_url(question_id: int) -> str:
    return reverse("polls:results", args=(question_id,))


def record_vote(question_id: int, choice_id: int) -> int:
    """The vote's UPDATE; returns the rows it changed (0: no such choice for this question).

    One UPDATE with F() so concurrent votes never lose increments (no read-modify-write). With
    GB_DB_WAIT_MS it runs in one transaction after a pg_sleep, so the request holds a database
    connection (and an open transaction) for that long: a slow query. The sleep comes before the
    UPDATE so no row lock is held while waiting: votes wait for connections, not for each other.
    Without it the queries are exactly the plain UPDATE (no transaction block).
    """
    choices = Choice.objects.filter(pk=choice_id, question_id=question_id)
    if settings.GB_DB_WAIT_MS <= 0:
        return choices.update(votes=F("votes") + 1)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(DB_WAIT_QUERY, [settings.GB_DB_WAIT_MS / 1000])
        return choices.update(votes=F("votes") + 1)


def body_size(request: HttpRequest) -> int:
    """Read the whole request body in chunks (never all of it in memory, and not capped by
    DATA_UPLOAD_MAX_MEMORY_SIZE as request.body is) and return its length."""
    return sum(len(chunk) for chunk in iter(partial(request.read, UPLOAD_CHUNK_BYTES), b""))


def received_text(size: int) -> HttpResponse:
    return HttpResponse(f"received {size} bytes", content_type="text/plain")


def index(request: HttpRequest) -> HttpResponse:
    upstream.wait()
    latest = list(Question.objects.order_by(*LATEST_QUESTIONS_ORDERING)[:LATEST_QUESTIONS_COUNT])
    return render(request, INDEX_TEMPLATE, index_context(latest))


def detail(request: HttpRequest, question_id: int) -> HttpResponse:
    upstream.wait()
    question = get_object_or_404(Question, pk=question_id)
    choices = list(question.choice_set.order_by(*CHOICES_ORDERING))
    return render(request, DETAIL_TEMPLATE, question_context(question, choices))


@require_POST
def vote(request: HttpRequest, question_id: int) -> HttpResponse:
    upstream.wait()
    question = get_object_or_404(Question, pk=question_id)
    choice_id = parse_choice_id(request.POST)
    updated = 0
    if choice_id is not None:
        updated = record_vote(question.pk, choice_id)
    if updated == 0:
        choices = list(question.choice_set.order_by(*CHOICES_ORDERING))
        return render(
            request, DETAIL_TEMPLATE, question_context(question, choices, NO_CHOICE_ERROR)
        )
    # Redirect after a successful POST so a reload cannot vote twice (POST-redirect-GET).
    return HttpResponseRedirect(results_url(question.pk))


def results(request: HttpRequest, question_id: int) -> HttpResponse:
    upstream.wait()
    question = get_object_or_404(Question, pk=question_id)
    choices = list(question.choice_set.order_by(*CHOICES_ORDERING))
    return render(request, RESULTS_TEMPLATE, question_context(question, choices))


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    """POST /polls/upload/: a slow client's upload. Reads the whole body; no upstream call, no
    database. Under WSGI the read holds the worker thread for as long as the client sends."""
    return received_text(body_size(request))


def healthz(request: HttpRequest) -> HttpResponse:
    # Database errors are deliberately not caught: the resulting 500 is the health signal.
    with connection.cursor() as cursor:
        cursor.execute(HEALTH_QUERY)
        cursor.fetchone()
    return HttpResponse("ok", content_type="text/plain")
