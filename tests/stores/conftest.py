"""The store tests run on the ``store`` fixture of tests/conftest.py: every kind of blob store in turn.

The ClickHouse store runs on chDB, the ClickHouse embedded in the process (no ClickHouse server can run here
either); its HTTP form is only parsed and checked to fail cleanly against an endpoint nobody listens on. The S3
store runs against the session's moto server; each test gets a fresh bucket.
"""
