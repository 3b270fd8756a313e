"""Development-only tooling: Azurite launcher and a local Azure Functions runner.

Nothing here is deployed (see .funcignore); the app under ``function_app.py`` must not import it.
"""
