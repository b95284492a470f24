from django.db import models


class Post(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    body = models.TextField()
    tags = models.CharField(max_length=200, blank=True, help_text="Space-separated words.")
    published = models.DateTimeField()
    archived = models.BooleanField(default=False)

    class Meta:
        ordering = ["-published"]

    def __str__(self):
        return self.title

    @property
    def tag_list(self):
        return self.tags.split()
