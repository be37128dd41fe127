"""The site's icon: linked from every page, and /favicon.ico (which browsers ask for anyway)
leads to it instead of a 404."""

from django.contrib.staticfiles import finders


def test_favicon_ico_redirects_to_the_static_icon(client, db):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/img/favicon.svg"
    assert finders.find("img/favicon.svg")


def test_pages_link_the_icon(client, db):
    html = client.get("/accounts/sign-in/").content.decode()
    assert '<link rel="icon" href="/static/img/favicon.svg" type="image/svg+xml">' in html
