"""The other side of the wire: a fake GoSendAPI for tests and local runs (shares nothing with botkit but botkit.types)."""
