"""Synchronous views of the tutorial polls app.

Each view is kept to "fetch, then render" with all database access done in the view itself
(querysets are evaluated here, never lazily inside a template), so that an async twin module
can mirror every function one for one using the async ORM. Everything that does no I/O lives
in module-level constants and helpers that both modules can share.
"""

from django.db import connection
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

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


def index(request: HttpRequest) -> HttpResponse:
    latest = list(Question.objects.order_by(*LATEST_QUESTIONS_ORDERING)[:LATEST_QUESTIONS_COUNT])
    return render(request, INDEX_TEMPLATE, index_context(latest))


def detail(request: HttpRequest, question_id: int) -> HttpResponse:
    question = get_object_or_404(Question, pk=question_id)
    choices = list(question.choice_set.order_by(*CHOICES_ORDERING))
    return render(request, DETAIL_TEMPLATE, question_context(question, choices))


@require_POST
def vote(request: HttpRequest, question_id: int) -> HttpResponse:
    question = get_object_or_404(Question, pk=question_id)
    choice_id = parse_choice_id(request.POST)
    updated = 0
    if choice_id is not None:
        # One UPDATE with F() so concurrent votes never lose increments (no read-modify-write).
        updated = Choice.objects.filter(pk=choice_id, question_id=question.pk).update(
            votes=F("votes") + 1
        )
    if updated == 0:
        choices = list(question.choice_set.order_by(*CHOICES_ORDERING))
        return render(
            request, DETAIL_TEMPLATE, question_context(question, choices, NO_CHOICE_ERROR)
        )
    # Redirect after a successful POST so a reload cannot vote twice (POST-redirect-GET).
    return HttpResponseRedirect(results_url(question.pk))


def results(request: HttpRequest, question_id: int) -> HttpResponse:
    question = get_object_or_404(Question, pk=question_id)
    choices = list(question.choice_set.order_by(*CHOICES_ORDERING))
    return render(request, RESULTS_TEMPLATE, question_context(question, choices))


def healthz(request: HttpRequest) -> HttpResponse:
    # Database errors are deliberately not caught: the resulting 500 is the health signal.
    with connection.cursor() as cursor:
        cursor.execute(HEALTH_QUERY)
        cursor.fetchone()
    return HttpResponse("ok", content_type="text/plain")
