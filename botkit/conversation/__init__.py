"""Conversations: the decorator DSL over transitions, and the context a handler gets."""
