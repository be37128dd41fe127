"""The site's URLs plus the benchmark's ceiling (`benchmarks/minimal.py`), for
`benchmarks/settings.py` only: production's `config.urls` never mounts the ceiling."""

from django.urls import include, path

from benchmarks import minimal
from config.urls import urlpatterns as site_patterns

bench_patterns = [
    path("minimal/resolve", minimal.resolve),
    path("minimal/keys/<str:key_id>/secret", minimal.secret),
    path("park", minimal.park),
]

urlpatterns = [
    # Before the site's patterns (the API's own catch-all would answer these paths 404), and
    # one include deep like the API's, so both resolve at the same cost.
    path("api/v1/bench/", include(bench_patterns)),
    *site_patterns,
]
