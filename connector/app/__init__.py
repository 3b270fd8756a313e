"""The use cases: intake per route, applying an update, status, lookups. They see ports (app/ports.py), never the
adapters that implement them; bootstrap wires the real ones, tests wire fakes."""
