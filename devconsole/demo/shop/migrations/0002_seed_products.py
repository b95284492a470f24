"""Seed a few products so the demo pages have something to show."""

from decimal import Decimal

from django.db import migrations

PRODUCTS = [
    ("Espresso cup", "espresso-cup", "7.50", "A small porcelain cup, 80 ml.", "kitchen coffee", False),
    ("French press", "french-press", "34.00", "Glass and steel, eight cups.", "kitchen coffee", False),
    ("Notebook", "notebook", "4.20", "A5, dotted, 96 pages.", "office paper", False),
    ("Fountain pen", "fountain-pen", "29.90", "Medium nib, blue ink cartridge included.", "office", False),
    ("Desk lamp", "desk-lamp", "45.00", "Warm LED, adjustable arm.", "office light", False),
    ("Fax machine", "fax-machine", "99.00", "No longer sold; kept for the archive.", "office vintage", True),
]


def seed(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for name, slug, price, description, tags, archived in PRODUCTS:
        Product.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "price": Decimal(price),
                "description": description,
                "tags": tags,
                "archived": archived,
            },
        )


def unseed(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    Product.objects.filter(slug__in=[row[1] for row in PRODUCTS]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("shop", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed, unseed),
    ]
