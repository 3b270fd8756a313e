"""The operator commands of `python -m connector`: check, replay, grant-permissions, new-secret, and what follows."""
