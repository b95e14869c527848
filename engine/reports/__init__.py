"""Renderings of a list of actions: JSON Lines, a terminal table, a self-contained HTML page."""
