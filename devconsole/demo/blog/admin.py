from django.contrib import admin

from .models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "published", "tags", "archived"]
    list_filter = ["archived", "published"]
    search_fields = ["title", "body", "tags"]
    prepopulated_fields = {"slug": ["title"]}
    date_hierarchy = "published"
