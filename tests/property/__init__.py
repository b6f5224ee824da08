"""Forgery properties: mutated webhook requests and chat tokens are never accepted and never enqueued."""
