"""Helpers shared by the tests: reference examples, signing, and access to the indexed function app."""
