"""The WhatsApp wire as pure values and rules: events in, messages out, signatures, phone numbers, the 24-hour window, triggers, idempotency keys."""
