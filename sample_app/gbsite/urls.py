"""Root URL configuration."""

from django.contrib import admin
from django.urls import include, path
from polls import info, views

urlpatterns = [
    path("polls/", include("polls.urls")),
    # Deliberately outside the polls namespace and without a trailing slash so that load
    # balancers and the harness can probe a fixed path that never redirects.
    path("healthz", views.healthz),
    # What this process really runs (driver, pool, views, middleware adaptation): the harness
    # records it per cell from the running app rather than trusting its own configuration.
    path("gbinfo", info.gbinfo),
    path("admin/", admin.site.urls),
]
