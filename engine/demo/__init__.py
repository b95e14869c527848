"""`nudge demo`: a seeded synthetic shop, told apart from a shop's own customers."""
