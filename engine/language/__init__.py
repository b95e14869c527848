"""The rule language: source text → Lark parse tree → typed AST, and syntax errors in plain
words."""
