"""A loopback imitation of the Microsoft Graph v1.0 employee-learning API, for tests and benchmarks.

Run it with ``python -m connector.sandbox`` or, from pytest, with
:func:`connector.sandbox.process.start_sandbox_process`. It holds everything in memory, enforces the rules of
the "Update learningCourseActivity" reference page with Graph's error bodies, issues its own bearer tokens
through an App Service managed-identity endpoint and injects faults on request. Dev tooling only: the product
never imports it.
"""
