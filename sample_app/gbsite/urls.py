"""Root URL configuration."""

from django.contrib import admin
from django.urls import include, path
from polls import views

urlpatterns = [
    path("polls/", include("polls.urls")),
    # Deliberately outside the polls namespace and without a trailing slash so that load
    # balancers and the harness can probe a fixed path that never redirects.
    path("healthz", views.healthz),
    path("admin/", admin.site.urls),
]
