from django.contrib import admin

from .models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price", "tags", "archived"]
    list_filter = ["archived"]
    search_fields = ["name", "description", "tags"]
    prepopulated_fields = {"slug": ["name"]}
