"""The pure core: event formats and validation, the merge, the queue envelope, failure kinds and the retry policy.

Imports nothing but the standard library, pydantic and small pure libraries (no Azure SDK, msgraph, kiota, aiohttp,
httpx or opentelemetry): everything here runs and is tested without I/O.
"""
