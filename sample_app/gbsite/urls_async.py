"""Root URL configuration for GB_VIEWS=async: the same paths, served by the async views."""

from django.contrib import admin
from django.urls import include, path
from polls import info, views

urlpatterns = [
    path("polls/", include("polls.urls_async")),
    path("healthz", views.healthz),
    path("gbinfo", info.gbinfo),
    path("admin/", admin.site.urls),
]
