"""``/docs`` and ``/redoc`` work without the internet: their scripts come from the service."""

from __future__ import annotations

import re

import httpx


def test_the_pages_name_only_the_services_own_files(server):
    for path in ("/docs", "/redoc"):
        page = httpx.get(f"{server.url}{path}")
        assert page.status_code == 200
        linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert linked and all(u.startswith("/docs/assets/") for u in linked), linked
        assert "http://" not in page.text and "https://" not in page.text, path
        for url in linked:
            asset = httpx.get(f"{server.url}{url}")
            assert asset.status_code == 200 and len(asset.content) > 1000, url
    assert httpx.get(f"{server.url}/docs/assets/../app.py").status_code == 404


def test_swagger_ui_and_redoc_render_with_the_internet_cut_off(server, chromium):
    """Headless Chromium with every request off the service's own address aborted."""
    elsewhere: list[str] = []

    def only_the_service(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    chromium.route("**/*", only_the_service)
    page = chromium.new_page()
    page.goto(f"{server.url}/docs", wait_until="load")
    page.wait_for_selector("text=/recommend", timeout=60_000)
    assert page.locator(".opblock-summary-path").count() >= 2  # both POST routes
    page.goto(f"{server.url}/redoc", wait_until="load")
    page.wait_for_selector("text=/feedback", timeout=60_000)
    assert elsewhere == [], elsewhere
