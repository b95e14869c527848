"""A checked rule set → SQL (SQLAlchemy Core): each trigger's occurrences and each condition."""
