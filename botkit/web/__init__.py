"""The Starlette app: the webhook, health and the trigger API."""
