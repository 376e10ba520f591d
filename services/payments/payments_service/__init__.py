"""Unpuzzle payments service: course purchases with Stripe, refunds, plans, subscriptions."""
