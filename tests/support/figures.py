"""The figures a fault test checked travel in its report's user_properties under this key: pytest-xdist
sends reports (not module state) from its workers, so the end-of-run summary sees every worker's figures."""

FIGURES = "figures"
