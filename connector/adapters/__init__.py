"""The outside world behind the ports: Microsoft Graph (msgraph-sdk), Azure Tables and Queues, identity, telemetry."""
