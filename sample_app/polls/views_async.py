"""The polls views on Django's async ORM, one for one with views.py (GB_VIEWS=async).

Each view awaits its queries (aget, aupdate, async iteration) and then renders; rendering does
no I/O because every queryset is evaluated here. Served under ASGI only: under WSGI Django would
run each of these in a new event loop per request. The upstream wait is awaited first
(polls/upstream.py), so while it lasts the request holds neither a thread nor a connection.
"""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import upstream
from .models import Choice, Question
from .views import (
    CHOICES_ORDERING,
    DETAIL_TEMPLATE,
    INDEX_TEMPLATE,
    LATEST_QUESTIONS_COUNT,
    LATEST_QUESTIONS_ORDERING,
    NO_CHOICE_ERROR,
    RESULTS_TEMPLATE,
    body_size,
    index_context,
    parse_choice_id,
    question_context,
    received_text,
    record_vote,
    results_url,
)


async def _question_or_404(question_id: int) -> Question:
    try:
        return await Question.objects.aget(pk=question_id)
    except Question.DoesNotExist:
        raise Http404("No Question matches the given query.") from None


async def _choices(question: Question) -> list[Choice]:
    return [c async for c in question.choice_set.order_by(*CHOICES_ORDERING)]


async def _record_vote(question_id: int, choice_id: int) -> int:
    if settings.GB_DB_WAIT_MS <= 0:
        # One UPDATE with F(), as in the sync view: concurrent votes never lose increments.
        return await Choice.objects.filter(pk=choice_id, question_id=question_id).aupdate(
            votes=F("votes") + 1
        )
    # The async ORM cannot open a transaction (transaction.atomic is sync only), so the whole
    # transactional function runs through sync_to_async -- which is what Django itself does with
    # every async ORM call: a thread (per request, under Django's ASGI handler) that holds the
    # database connection for the pg_sleep and the UPDATE.
    return await sync_to_async(record_vote)(question_id, choice_id)


async def index(request: HttpRequest) -> HttpResponse:
    await upstream.await_wait()
    qs = Question.objects.order_by(*LATEST_QUESTIONS_ORDERING)[:LATEST_QUESTIONS_COUNT]
    latest = [q async for q in qs]
    return render(request, INDEX_TEMPLATE, index_context(latest))


async def detail(request: HttpRequest, question_id: int) -> HttpResponse:
    await upstream.await_wait()
    question = await _question_or_404(question_id)
    return render(request, DETAIL_TEMPLATE, question_context(question, await _choices(question)))


@require_POST
async def vote(request: HttpRequest, question_id: int) -> HttpResponse:
    await upstream.await_wait()
    question = await _question_or_404(question_id)
    choice_id = parse_choice_id(request.POST)
    updated = 0
    if choice_id is not None:
        updated = await _record_vote(question.pk, choice_id)
    if updated == 0:
        choices = await _choices(question)
        return render(
            request, DETAIL_TEMPLATE, question_context(question, choices, NO_CHOICE_ERROR)
        )
    return HttpResponseRedirect(results_url(question.pk))


async def results(request: HttpRequest, question_id: int) -> HttpResponse:
    await upstream.await_wait()
    question = await _question_or_404(question_id)
    return render(request, RESULTS_TEMPLATE, question_context(question, await _choices(question)))


@csrf_exempt
@require_POST
async def upload(request: HttpRequest) -> HttpResponse:
    """POST /polls/upload/, as in views.py. Django's ASGI handler has already received the whole
    body (awaiting it, holding no thread) before calling the view; this reads it back."""
    return received_text(body_size(request))
