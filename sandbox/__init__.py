"""A loopback imitation of the Microsoft Graph v1.0 employee-learning API, for tests and benchmarks.

Run it with ``python -m sandbox`` or, from pytest, with
:func:`sandbox.process.start_sandbox_process`. It holds everything in memory, enforces the rules of
the "Update learningCourseActivity" reference page with Graph's error bodies, issues its own bearer tokens
through an App Service managed-identity endpoint and, for several tenants, through Entra's token endpoint (a
multi-tenant app with the managed identity as federated credential, over TLS with ``--https``), limits the request
rate on demand and injects faults. Dev tooling only: the product never imports it.
"""
