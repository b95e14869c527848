"""Parsed files → a checked rule set: names, types, dependencies and calendars, every problem
found."""
