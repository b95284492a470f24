"""``manage.py demo_report``: a small report that uses every common kind of argument.

It exists so the console has a command whose form shows a positional argument,
an option with choices, a boolean flag, an integer option and a list option.
"""

import csv
import io
import json

from django.core.management.base import BaseCommand, CommandError

SECTIONS = ("products", "posts")


class Command(BaseCommand):
    help = "Print a report on the demo's products or blog posts, as text, JSON or CSV."

    def add_arguments(self, parser):
        parser.add_argument("section", help="What to report on: %s." % " or ".join(SECTIONS))
        parser.add_argument(
            "--format",
            choices=["text", "json", "csv"],
            default="text",
            help="Output format (default: text).",
        )
        parser.add_argument(
            "--include-archived",
            action="store_true",
            help="Also list archived rows.",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=10,
            help="Show at most this many rows (default: 10).",
        )
        parser.add_argument(
            "--tags",
            nargs="*",
            default=[],
            metavar="TAG",
            help="Only rows carrying at least one of these tags.",
        )

    def handle(self, *args, **options):
        section = options["section"]
        if section not in SECTIONS:
            raise CommandError("unknown section %r: choose one of %s" % (section, ", ".join(SECTIONS)))
        limit = options["limit"]
        if limit < 1:
            raise CommandError("--limit must be at least 1, got %d" % limit)
        include_archived = options["include_archived"]
        tags = [tag.lower() for tag in options["tags"]]

        rows = self.products() if section == "products" else self.posts()
        total = len(rows)
        if not include_archived:
            rows = [row for row in rows if not row["archived"]]
        if tags:
            rows = [row for row in rows if set(tags) & {t.lower() for t in row["tags"]}]
        rows = rows[:limit]

        fmt = options["format"]
        summary = "%d of %d %s shown" % (len(rows), total, section)
        if fmt == "json":
            report = {
                "section": section,
                "format": fmt,
                "include_archived": include_archived,
                "limit": limit,
                "tags": tags,
                "total": total,
                "rows": rows,
            }
            self.stdout.write(json.dumps(report, indent=2))
            # Keep stdout machine-readable: the status line goes to stderr.
            self.stderr.write(summary, style_func=self.style.SUCCESS)
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            columns = list(rows[0]) if rows else ["name"]
            writer.writerow(columns)
            for row in rows:
                writer.writerow([" ".join(v) if isinstance(v, list) else v for v in (row[c] for c in columns)])
            self.stdout.write(buffer.getvalue(), ending="")
            self.stderr.write(summary, style_func=self.style.SUCCESS)
        else:
            self.stdout.write(
                "Report on %s (limit %d, archived %s, tags: %s)"
                % (
                    section,
                    limit,
                    "included" if include_archived else "excluded",
                    ", ".join(tags) if tags else "any",
                )
            )
            for row in rows:
                flags = " [archived]" if row["archived"] else ""
                detail = row.get("price") or row.get("published")
                self.stdout.write("  - %s (%s) tags: %s%s" % (row["name"], detail, " ".join(row["tags"]) or "-", flags))
            self.stdout.write(self.style.SUCCESS(summary))

    def products(self):
        from shop.models import Product

        return [
            {
                "name": p.name,
                "price": str(p.price),
                "tags": p.tag_list,
                "archived": p.archived,
            }
            for p in Product.objects.order_by("name")
        ]

    def posts(self):
        from blog.models import Post

        return [
            {
                "name": p.title,
                "published": p.published.date().isoformat(),
                "tags": p.tag_list,
                "archived": p.archived,
            }
            for p in Post.objects.order_by("-published")
        ]
