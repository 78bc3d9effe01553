"""GoSendAPI: the sender, its HTTP transport, rate limits and media uploads (the only code that talks HTTP to the provider)."""
