from django.conf import settings
from django.urls import path

from . import views, views_async

app_name = "polls"

# The same paths either way; GB_VIEWS chooses which module answers them.
v = views_async if settings.GB_VIEWS == "async" else views

urlpatterns = [
    path("", v.index, name="index"),
    path("<int:question_id>/", v.detail, name="detail"),
    path("<int:question_id>/results/", v.results, name="results"),
    path("<int:question_id>/vote/", v.vote, name="vote"),
    # A slow client's upload (no upstream call, no database).
    path("upload/", v.upload, name="upload"),
]
