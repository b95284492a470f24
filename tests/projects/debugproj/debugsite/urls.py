from django.urls import path
from pauses import views

urlpatterns = [
    path("bp/", views.bp),
    path("ask/", views.ask),
    path("boom/", views.boom),
    path("version/", views.version),
    path("crash/", views.crash),
    path("shout/", views.shout),
]
