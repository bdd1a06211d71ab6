"""The polls views on Django's async ORM, one for one with views.py (GB_VIEWS=async).

Each view awaits its queries (aget, aupdate, async iteration) and then renders; rendering does
no I/O because every queryset is evaluated here. Served under ASGI only: under WSGI Django would
run each of these in a new event loop per request.
"""

from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_POST

from .models import Choice, Question
from .views import (
    CHOICES_ORDERING,
    DETAIL_TEMPLATE,
    INDEX_TEMPLATE,
    LATEST_QUESTIONS_COUNT,
    LATEST_QUESTIONS_ORDERING,
    NO_CHOICE_ERROR,
    RESULTS_TEMPLATE,
    index_context,
    parse_choice_id,
    question_context,
    results_url,
)


async def _question_or_404(question_id: int) -> Question:
    try:
        return await Question.objects.aget(pk=question_id)
    except Question.DoesNotExist:
        raise Http404("No Question matches the given query.") from None


async def _choices(question: Question) -> list[Choice]:
    return [c async for c in question.choice_set.order_by(*CHOICES_ORDERING)]


async def index(request: HttpRequest) -> HttpResponse:
    qs = Question.objects.order_by(*LATEST_QUESTIONS_ORDERING)[:LATEST_QUESTIONS_COUNT]
    latest = [q async for q in qs]
    return render(request, INDEX_TEMPLATE, index_context(latest))


async def detail(request: HttpRequest, question_id: int) -> HttpResponse:
    question = await _question_or_404(question_id)
    return render(request, DETAIL_TEMPLATE, question_context(question, await _choices(question)))


@require_POST
async def vote(request: HttpRequest, question_id: int) -> HttpResponse:
    question = await _question_or_404(question_id)
    choice_id = parse_choice_id(request.POST)
    updated = 0
    if choice_id is not None:
        # One UPDATE with F(), as in the sync view: concurrent votes never lose increments.
        updated = await Choice.objects.filter(pk=choice_id, question_id=question.pk).aupdate(
            votes=F("votes") + 1
        )
    if updated == 0:
        choices = await _choices(question)
        return render(
            request, DETAIL_TEMPLATE, question_context(question, choices, NO_CHOICE_ERROR)
        )
    return HttpResponseRedirect(results_url(question.pk))


async def results(request: HttpRequest, question_id: int) -> HttpResponse:
    question = await _question_or_404(question_id)
    return render(request, RESULTS_TEMPLATE, question_context(question, await _choices(question)))
