"""URLs of the devconsole demo project."""

from django.contrib import admin
from django.urls import include, path
from shop import views as shop_views

urlpatterns = [
    path("", shop_views.index, name="index"),
    path("products/<slug:slug>/", shop_views.product_detail, name="product-detail"),
    path("slow/", shop_views.slow, name="slow"),
    path("boom/", shop_views.boom, name="boom"),
    path("ping/", shop_views.ping, name="ping"),
    path("api/products/", shop_views.api_products, name="api-products"),
    path("api/echo/", shop_views.api_echo, name="api-echo"),
    path("insight/n-plus-one/", shop_views.n_plus_one, name="n-plus-one"),
    path("insight/duplicate/", shop_views.duplicate, name="duplicate"),
    path("insight/queries/", shop_views.queries, name="queries"),
    path("insight/boom/", shop_views.boom_locals, name="boom-locals"),
    path("contact/", shop_views.contact, name="contact"),
    path("blog/", include("blog.urls")),
    path("admin/", admin.site.urls),
]
