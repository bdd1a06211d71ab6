"""Replace all polls data with a known, deterministic data set for load tests."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from polls.models import Choice, Question


class Command(BaseCommand):
    help = (
        "Delete every question (and, by cascade, every choice), then create N questions with "
        "M choices each. Primary keys are always 1..N for questions, so load generators can "
        "address /polls/<id>/ without discovering ids first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--questions", type=int, default=10, help="N (default 10)")
        parser.add_argument("--choices", type=int, default=4, help="M per question (default 4)")

    def handle(self, *args: Any, **options: Any) -> None:
        n_questions: int = options["questions"]
        n_choices: int = options["choices"]
        if n_questions < 0 or n_choices < 0:
            raise CommandError("--questions and --choices must be >= 0")

        now = timezone.now()
        questions = [
            Question(pk=q, question_text=f"Question {q}?", pub_date=now)
            for q in range(1, n_questions + 1)
        ]
        # Choice ids are derived from the question number so that re-seeding reproduces the
        # exact same ids, whatever was in the tables before.
        choices = [
            Choice(pk=(q - 1) * n_choices + c, question_id=q, choice_text=f"Choice {c}", votes=0)
            for q in range(1, n_questions + 1)
            for c in range(1, n_choices + 1)
        ]
        with transaction.atomic():
            Question.objects.all().delete()
            Question.objects.bulk_create(questions)
            Choice.objects.bulk_create(choices)
            # Explicit pks bypass the id sequences; move them past the seeded rows so rows
            # created later (e.g. via the admin) do not collide.
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), [Question, Choice]):
                    cursor.execute(sql)

        self.stdout.write(f"seeded {n_questions} questions x {n_choices} choices")
