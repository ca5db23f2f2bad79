"""End-to-end benchmark of Gust: see bench/README.md and ``manage.py bench``."""
