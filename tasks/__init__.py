"""Prefect @task wrappers: thin I/O, retries, cache keys and artifacts around the pure packages."""
