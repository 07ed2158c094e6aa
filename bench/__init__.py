"""Benchmarks of sso_middleware side by side with its peers (``make bench``; see ``bench/run.py``)."""
