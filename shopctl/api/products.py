"""`/product`: anyone reads the catalog; only admins change it."""

from __future__ import annotations

from sanic import Blueprint, Request

from shopctl.api.common import body, call, query
from shopctl.api.guards import authenticated
from shopctl.api.responses import ok
from shopctl.schemas import ProductCreate, ProductListQuery, ProductUpdate
from shopctl.services.catalog import products as catalog

api = Blueprint("products")


@api.get("/product")
async def list_products(request: Request):
    params = query(request, ProductListQuery)
    products, meta = await call(request, catalog.list_products, params)
    return ok(products, "Products retrieved successfully", meta=meta)


@api.get("/product/<product_id>")
async def get_product(request: Request, product_id: str):
    product = await call(request, catalog.get_product, product_id)
    return ok(product, "Product retrieved successfully")


@api.post("/product")
@authenticated("ADMIN")
async def create_product(request: Request):
    payload = body(request, ProductCreate)
    currency = request.app.ctx.settings.stripe_currency
    product = await call(request, catalog.create_product, payload, currency)
    return ok(product, "Product created successfully", status=201)


@api.patch("/product/<product_id>")
@authenticated("ADMIN")
async def update_product(request: Request, product_id: str):
    payload = body(request, ProductUpdate)
    product = await call(request, catalog.update_product, product_id, payload)
    return ok(product, "Product updated successfully")


@api.delete("/product/<product_id>")
@authenticated("ADMIN")
async def delete_product(request: Request, product_id: str):
    outcome = await call(request, catalog.delete_product, product_id)
    if outcome == "archived":
        return ok(None, "Product archived")
    return ok(None, "Product deleted successfully")
