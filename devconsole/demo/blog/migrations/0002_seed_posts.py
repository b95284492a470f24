"""Seed a few blog posts so the demo pages have something to show."""

import datetime

from django.db import migrations

UTC = datetime.timezone.utc

POSTS = [
    (
        "Hello, devconsole",
        "hello-devconsole",
        "This blog is part of the demo project shipped with devconsole.\n\n"
        "Open the console, start the server and reload this page: the request appears live.",
        "news",
        datetime.datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
        False,
    ),
    (
        "What runserver does",
        "what-runserver-does",
        "ManagementUtility, fetch_command, inner_run, basehttp.run, WSGIServer, serve_forever: "
        "a select loop with a half-second poll interval.",
        "django internals",
        datetime.datetime(2025, 2, 3, 9, 0, tzinfo=UTC),
        False,
    ),
    (
        "Keep-alive and Content-Length",
        "keep-alive-and-content-length",
        "The development server keeps a connection open only when the response has a Content-Length.",
        "django http",
        datetime.datetime(2025, 3, 10, 9, 0, tzinfo=UTC),
        False,
    ),
    (
        "An old announcement",
        "an-old-announcement",
        "This post is archived: the list skips it, the admin still shows it.",
        "news",
        datetime.datetime(2024, 6, 1, 9, 0, tzinfo=UTC),
        True,
    ),
]


def seed(apps, schema_editor):
    Post = apps.get_model("blog", "Post")
    for title, slug, body, tags, published, archived in POSTS:
        Post.objects.update_or_create(
            slug=slug,
            defaults={
                "title": title,
                "body": body,
                "tags": tags,
                "published": published,
                "archived": archived,
            },
        )


def unseed(apps, schema_editor):
    Post = apps.get_model("blog", "Post")
    Post.objects.filter(slug__in=[row[1] for row in POSTS]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("blog", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed, unseed),
    ]
